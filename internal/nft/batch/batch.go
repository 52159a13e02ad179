package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Batcher commits changes as one nftables transaction with a single
// acknowledgement. google/nftables builds the messages; its Conn.Flush
// asks the kernel to acknowledge every message and to echo every rule back,
// which costs two receive calls (four system calls) per message: at 1,000
// tenants that was most of an Apply. The batcher's queue is a Conn whose
// Flush hands the batch to capture instead of the kernel; Commit then sends
// it on the batcher's own socket with no echo and an acknowledgement
// requested for the last message only. The kernel processes a batch
// synchronously and all-or-nothing, and reports an error for any message
// that fails, so the last acknowledgement or the first error is the
// transaction's outcome.
type Batcher struct {
	queue    *nftables.Conn // queues changes; never talks to the kernel
	captured []mdnetlink.Message
	netnsFd  int
	sock     *mdnetlink.Conn
	// gen is the ruleset generation after this batcher's last commit, if
	// no other transaction (by anyone, on any table) has been committed
	// since the last CommitFresh; 0 when that is not known.
	gen uint32
	// port is the netlink port id of sock: the kernel puts it in the
	// header of every change notification of a transaction sock sent, so
	// the watch (package nft, watch.go) tells egressfw's own changes from
	// others'.
	port atomic.Uint32
	// While a watch runs, mon is its nftables notification socket. A
	// commit takes it out of the notification group for its own
	// transaction: with no listener the kernel builds no notifications,
	// which cost a third of a 1,000-tenant commit, and the watch ignores
	// its own anyway. missed is called when another transaction may have
	// committed while it was out (see mute).
	mon    *mdnetlink.Conn
	missed func()
}

// commitTimeout bounds the wait for the kernel's answer to a batch.
const commitTimeout = 30 * time.Second

// New opens the batcher's socket in the network namespace open at netnsFd,
// or in the caller's when netnsFd is negative.
func New(netnsFd int) (*Batcher, error) {
	b := &Batcher{netnsFd: netnsFd}
	q, err := nftables.New(nftables.WithTestDial(b.capture))
	if err != nil {
		return nil, fmt.Errorf("nftables message queue: %w", err)
	}
	b.queue = q
	if err := b.dial(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Batcher) dial() error {
	cfg := &mdnetlink.Config{}
	if b.netnsFd >= 0 {
		cfg.NetNS = b.netnsFd
	}
	sock, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return fmt.Errorf("open nftables netlink: %w", err)
	}
	if err := BigBuffers(sock); err != nil {
		sock.Close()
		return err
	}
	port, err := portID(sock)
	if err != nil {
		sock.Close()
		return err
	}
	b.sock = sock
	b.port.Store(port)
	return nil
}

// portID is the netlink port id the kernel bound sock to.
func portID(sock *mdnetlink.Conn) (uint32, error) {
	raw, err := sock.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("netlink port id: %w", err)
	}
	var sa unix.Sockaddr
	var serr error
	if err := raw.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return 0, fmt.Errorf("netlink port id: %w", err)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if serr != nil || !ok {
		return 0, fmt.Errorf("netlink port id: getsockname: %v", serr)
	}
	return nl.Pid, nil
}

// capture stands in for the kernel while the queue flushes: it keeps the
// batch and acknowledges every message.
func (b *Batcher) capture(req []mdnetlink.Message) ([]mdnetlink.Message, error) {
	b.captured = append(b.captured, req...)
	return []mdnetlink.Message{{Header: mdnetlink.Header{Type: mdnetlink.Error}, Data: make([]byte, 4)}}, nil
}

// Queue is where changes are queued (AddTable, AddRule, ...) until Commit
// or Encode. It never talks to the kernel.
func (b *Batcher) Queue() *nftables.Conn { return b.queue }

// Port is the netlink port id of the batcher's socket, which the kernel
// stamps on every change notification of a transaction the batcher sent.
// It changes when a failed commit replaces the socket.
func (b *Batcher) Port() uint32 { return b.port.Load() }

// SetMonitor names the watch's nftables notification socket, which every
// commit takes out of the notification group for its own transaction, and
// the function called when another transaction may have committed while
// it was out.
func (b *Batcher) SetMonitor(mon *mdnetlink.Conn, missed func()) { b.mon, b.missed = mon, missed }

// Commit sends what is queued as one transaction and returns its outcome.
// Nothing queued is a no-op. The generation stays known only if it was and
// this transaction was the only one since.
func (b *Batcher) Commit() error { return b.commitTracked(false, b.send) }

// CommitFresh is Commit for a transaction that brings the table to a state
// the caller records: the generation becomes known if this transaction is
// the only one between the generation reads around it.
func (b *Batcher) CommitFresh() error { return b.commitTracked(true, b.send) }

// CommitMessages is CommitFresh for a batch encoded before (the spare
// batch, package nft's spare.go):
// batch begin, the messages, batch end.
func (b *Batcher) CommitMessages(msgs []mdnetlink.Message) error {
	return b.commitTracked(true, func() error { return b.sendMessages(msgs) })
}

func (b *Batcher) commitTracked(fresh bool, send func() error) error {
	prev := b.gen
	b.gen = 0
	unmute := b.mute()
	before, gerr := b.Generation()
	err := send()
	after, aerr := b.Generation()
	known := gerr == nil && aerr == nil
	unmute(known, before, after, err == nil)
	if err != nil {
		return err
	}
	if known && after == before+1 && (fresh || prev == before) {
		b.gen = after
	}
	return nil
}

// mute takes the watch's socket out of the notification group and returns
// the function that puts it back after the commit, given the generations
// read around it. Every transaction moves the generation by one, so
// another program's transaction committed while the socket was out shows
// as a gap: before the commit (generation at mute time != before), in it
// (after != before+1 for a commit, != before for a failure) or after it
// (generation once back != after). Then missed is called, and the watch
// treats it like lost notifications.
func (b *Batcher) mute() func(known bool, before, after uint32, committed bool) {
	if b.mon == nil {
		return func(bool, uint32, uint32, bool) {}
	}
	at, err := b.Generation()
	if err != nil || b.mon.LeaveGroup(unix.NFNLGRP_NFTABLES) != nil {
		return func(bool, uint32, uint32, bool) {} // stays a listener
	}
	return func(known bool, before, after uint32, committed bool) {
		jerr := b.mon.JoinGroup(unix.NFNLGRP_NFTABLES)
		back, berr := b.Generation()
		if jerr != nil || berr != nil || !known || othersIn(at, before, after, back, committed) {
			b.missed()
		}
	}
}

// othersIn reports whether the generations read when the socket left the
// group (at), before and after the commit, and when it was back show a
// transaction that was not this commit.
func othersIn(at, before, after, back uint32, committed bool) bool {
	step := uint32(0)
	if committed {
		step = 1
	}
	return at != before || after != before+step || back != after
}

// Unchanged reports whether no transaction but this batcher's own has been
// committed since the last CommitFresh.
func (b *Batcher) Unchanged() bool {
	g, err := b.Generation()
	return err == nil && b.gen != 0 && g == b.gen
}

// Generation asks the kernel for the ruleset's generation id, which every
// committed nftables transaction (of any table and owner) increments.
func (b *Batcher) Generation() (uint32, error) {
	req := mdnetlink.Message{
		Header: mdnetlink.Header{Type: mdnetlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: mdnetlink.Request},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
	msgs, err := b.sock.Execute(req)
	if err != nil {
		return 0, fmt.Errorf("read nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := mdnetlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("read nftables generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("read nftables generation: no generation id in the answer")
}

// send sends what is queued as one transaction and returns its outcome.
func (b *Batcher) send() error {
	msgs, err := b.Encode()
	if err != nil {
		return err
	}
	return b.sendMessages(msgs)
}

// Encode returns what is queued as a batch (begin, messages, end), valid
// until the next Encode, and empties the queue.
func (b *Batcher) Encode() ([]mdnetlink.Message, error) {
	b.captured = b.captured[:0]
	if err := b.queue.Flush(); err != nil {
		return nil, fmt.Errorf("encode nftables batch: %w", err)
	}
	return b.captured, nil
}

// sendMessages sends an encoded batch as one transaction and returns its
// outcome. It sets the messages' headers.
func (b *Batcher) sendMessages(msgs []mdnetlink.Message) error {
	if len(msgs) < 3 { // batch begin and end around nothing
		return nil
	}
	last := len(msgs) - 2 // the message before "batch end"
	for i := range msgs {
		h := &msgs[i].Header
		h.Sequence, h.PID = 0, 0 // assigned by the socket that sends
		h.Flags &^= mdnetlink.Acknowledge | mdnetlink.Echo
		if i == last {
			h.Flags |= mdnetlink.Acknowledge
		}
	}
	sent, err := b.sock.SendMessages(msgs)
	if err != nil {
		return b.reset(fmt.Errorf("send nftables batch: %w", err))
	}
	want := sent[last].Header.Sequence
	if err := b.sock.SetReadDeadline(time.Now().Add(commitTimeout)); err != nil {
		return b.reset(fmt.Errorf("receive nftables answer: %w", err))
	}
	for {
		replies, err := b.sock.Receive()
		if err != nil {
			// An error for one message: the kernel aborted the whole
			// transaction. Later answers of this batch may still be queued;
			// a fresh socket leaves them behind.
			return b.reset(fmt.Errorf("nftables transaction: %w", err))
		}
		for _, r := range replies {
			if r.Header.Type == mdnetlink.Error && r.Header.Sequence == want {
				return nil
			}
		}
	}
}

// reset replaces the socket after a failed commit and returns err.
func (b *Batcher) reset(err error) error {
	b.sock.Close()
	if derr := b.dial(); derr != nil {
		return errors.Join(err, derr)
	}
	return err
}

// Close releases the socket.
func (b *Batcher) Close() error {
	if b.sock == nil {
		return nil
	}
	return b.sock.Close()
}

// batchBuffer is the socket buffer size for the nftables sockets. A table
// for 1000 tenants is one batch of a few MB, and google/nftables asks for an
// ack per message; the default buffers (net.core.[rw]mem_default) fail with
// EMSGSIZE / ENOBUFS. The *FORCE options raise the limit for this socket
// only (needs CAP_NET_ADMIN, which programming nftables needs anyway) and
// change no sysctl; memory is only used while a batch is in flight.
const batchBuffer = 64 << 20

// BigBuffers raises the socket buffers of c to batchBuffer.
func BigBuffers(c *mdnetlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket buffers: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, batchBuffer); e != nil {
				serr = e
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("netlink socket buffers: %w", err)
	}
	return nil
}

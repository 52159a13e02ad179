package nft

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// batcher commits changes as one nftables transaction with a single
// acknowledgement. google/nftables builds the messages; its Conn.Flush
// asks the kernel to acknowledge every message and to echo every rule back,
// which costs two receive calls (four system calls) per message: at 1,000
// tenants that was most of an Apply. The batcher's queue is a Conn whose
// Flush hands the batch to capture instead of the kernel; commit then sends
// it on the batcher's own socket with no echo and an acknowledgement
// requested for the last message only. The kernel processes a batch
// synchronously and all-or-nothing, and reports an error for any message
// that fails, so the last acknowledgement or the first error is the
// transaction's outcome.
type batcher struct {
	q        *nftables.Conn // queues changes; never talks to the kernel
	captured []mdnetlink.Message
	netnsFd  int
	sock     *mdnetlink.Conn
}

// commitTimeout bounds the wait for the kernel's answer to a batch.
const commitTimeout = 30 * time.Second

func newBatcher(netnsFd int) (*batcher, error) {
	b := &batcher{netnsFd: netnsFd}
	q, err := nftables.New(nftables.WithTestDial(b.capture))
	if err != nil {
		return nil, fmt.Errorf("nftables message queue: %w", err)
	}
	b.q = q
	if err := b.dial(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *batcher) dial() error {
	cfg := &mdnetlink.Config{}
	if b.netnsFd >= 0 {
		cfg.NetNS = b.netnsFd
	}
	sock, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return fmt.Errorf("open nftables netlink: %w", err)
	}
	if err := bigBuffers(sock); err != nil {
		sock.Close()
		return err
	}
	b.sock = sock
	return nil
}

// capture stands in for the kernel while the queue flushes: it keeps the
// batch and acknowledges every message.
func (b *batcher) capture(req []mdnetlink.Message) ([]mdnetlink.Message, error) {
	b.captured = append(b.captured, req...)
	return []mdnetlink.Message{{Header: mdnetlink.Header{Type: mdnetlink.Error}, Data: make([]byte, 4)}}, nil
}

// commit sends what is queued as one transaction and returns its outcome.
// Nothing queued is a no-op.
func (b *batcher) commit() error {
	b.captured = b.captured[:0]
	if err := b.q.Flush(); err != nil {
		return fmt.Errorf("encode nftables batch: %w", err)
	}
	msgs := b.captured
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
func (b *batcher) reset(err error) error {
	b.sock.Close()
	if derr := b.dial(); derr != nil {
		return errors.Join(err, derr)
	}
	return err
}

// close releases the socket.
func (b *batcher) close() error {
	if b.sock == nil {
		return nil
	}
	return b.sock.Close()
}

package dnsfront

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for Config.
const (
	DefaultQueryTimeout = 5 * time.Second
	DefaultMaxInflight  = 512
	DefaultMaxTCPConns  = 64
	DefaultTCPIdle      = 10 * time.Second
	DefaultTCPQueries   = 100
)

// Config configures a Server. Zero fields take the defaults.
type Config struct {
	// Decider answers the queries; required.
	Decider Decider
	// Observe, if set, is called after every message, once its reply is
	// sent (on the goroutine that answered it): for logs and metrics.
	Observe func(*Event)
	// QueryTimeout bounds one Decide call.
	QueryTimeout time.Duration
	// MaxInflight bounds the UDP queries of one listener address being
	// decided at once; more are dropped (the client asks again).
	MaxInflight int
	// MaxTCPConns bounds the TCP connections of one listener address;
	// more are closed at once.
	MaxTCPConns int
	// TCPIdle closes a TCP connection that sends no complete query (or
	// does not read its reply) for that long (RFC 7766 6.2.3).
	TCPIdle time.Duration
	// TCPQueries is how many queries one TCP connection may ask before it
	// is closed.
	TCPQueries int
}

// Server answers tenants' DNS on their listeners. Safe for concurrent use.
type Server struct {
	cfg Config
	h   handler
	ct  *conntrack

	mu     sync.Mutex
	open   map[*Listener]struct{}
	closed bool
}

// NewServer builds a Server; its conntrack socket is opened in the calling
// thread's network namespace, where the listeners must be too.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Decider == nil {
		return nil, errors.New("dnsfront: no Decider")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxInflight, DefaultMaxInflight)
	def(&cfg.MaxTCPConns, DefaultMaxTCPConns)
	def(&cfg.TCPQueries, DefaultTCPQueries)
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.TCPIdle <= 0 {
		cfg.TCPIdle = DefaultTCPIdle
	}
	ct, err := dialConntrack()
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, h: handler{decide: cfg.Decider, observe: cfg.Observe, timeout: cfg.QueryTimeout},
		ct: ct, open: map[*Listener]struct{}{}}, nil
}

// Close closes every listener and the conntrack socket.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := make([]*Listener, 0, len(s.open))
	for l := range s.open {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
	}
	return s.ct.close()
}

// Listener is one tenant's DNS on one address: a UDP and a TCP socket.
type Listener struct {
	s        *Server
	slot     uint32
	addr     netip.AddrPort
	wild     bool
	udp      *net.UDPConn
	tcp      *net.TCPListener
	inflight chan struct{}
	conns    chan struct{}
	cancel   context.CancelFunc
	ctx      context.Context
	wg       sync.WaitGroup
	once     sync.Once
}

// Listen opens the tenant slot's transparent UDP and TCP sockets on addr
// (127.0.0.1:PORT and [::1]:PORT for local tenants, whose DNS the kernel
// redirects to loopback; 0.0.0.0:PORT and [::]:PORT for forwarded ones,
// redirected to the address of the interface they arrived on) and serves
// them until Close. It needs CAP_NET_ADMIN.
func (s *Server) Listen(ctx context.Context, slot uint32, addr netip.AddrPort) (*Listener, error) {
	udp, tcp, err := ListenSockets(ctx, addr)
	if err != nil {
		return nil, err
	}
	return s.Serve(slot, addr, udp, tcp)
}

// Serve serves the tenant slot's DNS on sockets the caller opened on addr
// (ListenSockets in production; tests may hand it plain sockets) until
// Close, which closes them. On error it closes them itself.
func (s *Server) Serve(slot uint32, addr netip.AddrPort, udp *net.UDPConn, tcp *net.TCPListener) (*Listener, error) {
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{s: s, slot: slot, addr: addr, wild: addr.Addr().IsUnspecified(), udp: udp, tcp: tcp,
		inflight: make(chan struct{}, s.cfg.MaxInflight), conns: make(chan struct{}, s.cfg.MaxTCPConns),
		ctx: lctx, cancel: cancel}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.closeSockets()
		cancel()
		return nil, errors.New("dnsfront: server closed")
	}
	s.open[l] = struct{}{}
	s.mu.Unlock()
	l.wg.Add(2)
	go l.serveUDP()
	go l.serveTCP()
	return l, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// Close stops the listener: its sockets close, decisions under way are
// cancelled and TCP connections closed; it returns when all have ended.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.closeSockets()
		l.wg.Wait()
		l.s.mu.Lock()
		delete(l.s.open, l)
		l.s.mu.Unlock()
	})
	return err
}

func (l *Listener) closeSockets() error {
	return errors.Join(l.udp.Close(), l.tcp.Close())
}

// udpBuf is one datagram's buffers, pooled.
type udpBuf struct {
	msg [MaxQuerySize + 1]byte
	oob [64]byte
	out [ednsSize + 64]byte
}

var udpBufs = sync.Pool{New: func() any { return new(udpBuf) }}

// serveUDP reads datagrams and answers each on its own goroutine (a
// decision may wait for the upstream), at most MaxInflight at once.
func (l *Listener) serveUDP() {
	defer l.wg.Done()
	for {
		b := udpBufs.Get().(*udpBuf)
		n, oobn, flags, src, err := l.udp.ReadMsgUDPAddrPort(b.msg[:], b.oob[:])
		if err != nil {
			udpBufs.Put(b)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if flags&unix.MSG_TRUNC != 0 || n > MaxQuerySize {
			udpBufs.Put(b)
			l.dropped("too_large")
			continue
		}
		local := l.addr
		if l.wild {
			if dst, ok := pktinfoDst(b.oob[:oobn]); ok {
				local = netip.AddrPortFrom(dst, l.addr.Port())
			}
		}
		select {
		case l.inflight <- struct{}{}:
		default:
			udpBufs.Put(b)
			l.dropped("overloaded")
			continue
		}
		l.wg.Add(1)
		go func() {
			defer func() { <-l.inflight; udpBufs.Put(b); l.wg.Done() }()
			l.answerUDP(b, n, src, local)
		}()
	}
}

// dropped reports a message left unanswered.
func (l *Listener) dropped(reason string) {
	if l.s.h.observe != nil {
		l.s.h.observe(&Event{Reason: reason, Rcode: -1})
	}
}

func (l *Listener) answerUDP(b *udpBuf, n int, src, local netip.AddrPort) {
	q := &Query{Slot: l.slot, Src: src, Local: local,
		origDst: func() netip.AddrPort { return l.s.origDst(unix.IPPROTO_UDP, local, src) }}
	var ev Event
	out := l.s.h.answer(l.ctx, b.msg[:n], b.out[:0], q, &ev)
	defer l.s.h.report(&ev) // after the reply is sent
	if len(out) == 0 {
		return
	}
	if l.wild {
		_, _, _ = l.udp.WriteMsgUDPAddrPort(out, pktinfoSrc(local.Addr()), src)
		return
	}
	_, _ = l.udp.WriteToUDPAddrPort(out, src)
}

// origDst looks the flow up in conntrack; zero if it cannot be found.
func (s *Server) origDst(proto uint8, local, remote netip.AddrPort) netip.AddrPort {
	dst, err := s.ct.origDst(proto, local, remote)
	if err != nil {
		return netip.AddrPort{}
	}
	return dst
}

// serveTCP accepts connections, at most MaxTCPConns at once.
func (l *Listener) serveTCP() {
	defer l.wg.Done()
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case l.conns <- struct{}{}:
		default:
			c.Close()
			l.dropped("overloaded")
			continue
		}
		l.wg.Add(1)
		go func() {
			defer func() { <-l.conns; l.wg.Done() }()
			l.serveConn(c)
		}()
	}
}

// serveConn answers the queries of one TCP connection in turn (RFC 7766
// framing: a two-byte length before each message).
func (l *Listener) serveConn(c *net.TCPConn) {
	defer c.Close()
	stop := context.AfterFunc(l.ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	local, src := addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
	var once sync.Once
	var orig netip.AddrPort
	origDst := func() netip.AddrPort {
		once.Do(func() { orig = l.s.origDst(unix.IPPROTO_TCP, local, src) })
		return orig
	}
	in := make([]byte, MaxQuerySize)
	out := make([]byte, 0, 2+ednsSize)
	idle := l.s.cfg.TCPIdle
	for range l.s.cfg.TCPQueries {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		if _, err := io.ReadFull(c, in[:2]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(in))
		if n == 0 || n > MaxQuerySize {
			return
		}
		if _, err := io.ReadFull(c, in[:n]); err != nil {
			return
		}
		q := &Query{Slot: l.slot, TCP: true, Src: src, Local: local, origDst: origDst}
		var ev Event
		out = l.s.h.answer(l.ctx, in[:n], out[:2], q, &ev)
		if len(out) == 2 {
			l.s.h.report(&ev)
			continue // not a query: nothing to answer
		}
		binary.BigEndian.PutUint16(out, uint16(len(out)-2))
		_ = c.SetWriteDeadline(time.Now().Add(idle))
		_, err := c.Write(out)
		l.s.h.report(&ev) // after the reply is sent
		if err != nil {
			return
		}
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	t, _ := a.(*net.TCPAddr)
	if t == nil {
		return netip.AddrPort{}
	}
	ap := t.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/sni"
	"github.com/egressfw/egressfw/internal/tproxy"
	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is one immutable generation of the running config, as the data
// path uses it: policy, resolver, and each slot's tenant. A reload builds a
// new one (Build), opens its listeners (Listen) and swaps it in (Install);
// connections keep the one they started with.
type Snapshot struct {
	cfg      *config.Config
	policy   *policy.Policy
	tenants  map[uint32]*tenantState // by slot
	peekOpts sni.PeekOptions
	denyFull bool // listener.deny_detail = "full": refusals say why
}

// tenantState is a tenant in one snapshot. Its shares outlive snapshots so
// the per-tenant caps count connections across reloads.
type tenantState struct {
	name      string
	slot      config.Slot
	compiled  *policy.CompiledTenant
	share     *share // of the proxied connections (server.connPool)
	peekShare *share // of the connections still being peeked (server.peekPool)
	pacer     *pacer // max_new_per_second; outlives snapshots like the shares
	// forwarded tenants (interfaces or source_cidrs) also arrive by nat
	// REDIRECT on the primary address of their ingress interface, so their
	// listener is bound to the wildcard address (see listenAddrs).
	forwarded bool
}

// Kernel is what the data path asks the kernel for: transparent listening
// sockets, and where an accepted connection was going, for a TPROXYed one
// (its local address) and for a forwarded tenant's REDIRECTed one (the NAT
// record). Package tproxy in production; tests listen on plain loopback
// sockets and say where each connection was going (package proxytest).
type Kernel interface {
	Listen(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error)
	OriginalDst(c *net.TCPConn) netip.AddrPort
	OriginalDstNAT(c *net.TCPConn) (netip.AddrPort, error)
}

// tproxyKernel is the kernel of package tproxy.
type tproxyKernel struct{}

func (tproxyKernel) Listen(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
	return tproxy.Listen(ctx, ap)
}
func (tproxyKernel) OriginalDst(c *net.TCPConn) netip.AddrPort { return tproxy.OriginalDst(c) }
func (tproxyKernel) OriginalDstNAT(c *net.TCPConn) (netip.AddrPort, error) {
	return tproxy.OriginalDstNAT(c)
}

// Options configure New.
type Options struct {
	Log *slog.Logger
	// Metrics registers the data path's series.
	Metrics prometheus.Registerer
	// Dialer connects upstream, to validated addresses only (a
	// tproxy.Dialer with firewall.bypass_mark).
	Dialer Dialer
	// Mark, if not 0, is set as SO_MARK on the resolver's sockets
	// (firewall.bypass_mark), so egressfw's own DNS bypasses interception.
	Mark uint32
	// Kernel gives the listening sockets and original destinations; nil
	// is package tproxy's.
	Kernel Kernel
}

// Proxy is the data path: listeners, per-connection handling, caps, logs.
type Proxy struct {
	log     *slog.Logger
	metrics *metrics
	state   atomic.Pointer[Snapshot]
	dialer  Dialer
	kernel  Kernel
	mark    uint32

	connPool, peekPool *pool
	denials            *denialLimiter
	hostAddrs          atomic.Pointer[[]netip.Prefix] // the host's own addresses and local routes, always internal
	addrIfaces         atomic.Pointer[map[netip.Addr]string]

	mu        sync.Mutex
	pacers    map[string]*pacer // by tenant name
	listeners map[uint32]*portListener
	conns     sync.WaitGroup
	accepting atomic.Int32 // accept loops running
}

// New returns a Proxy with no snapshot and no listeners.
func New(o Options) *Proxy {
	if o.Kernel == nil {
		o.Kernel = tproxyKernel{}
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	return &Proxy{
		log: o.Log, metrics: newMetrics(o.Metrics), dialer: o.Dialer, kernel: o.Kernel, mark: o.Mark,
		connPool: newPool(), peekPool: newPool(), denials: newDenialLimiter(10, 10*time.Second),
		listeners: map[uint32]*portListener{}, pacers: map[string]*pacer{},
	}
}

// Build compiles cfg with the given slots. It has no side effects, so a
// reload that fails here leaves everything as it was.
func (s *Proxy) Build(cfg *config.Config, slots map[string]config.Slot) (*Snapshot, error) {
	pol, compiled, _, err := newPolicy(cfg, s.mark)
	if err != nil {
		return nil, err
	}
	if ha := s.hostAddrs.Load(); ha != nil {
		pol.Classifier().SetHostRanges(*ha)
	}
	snap := &Snapshot{cfg: cfg, policy: pol, tenants: map[uint32]*tenantState{},
		peekOpts: sni.PeekOptions{Timeout: cfg.Listener.PeekTimeout.Duration,
			MaxHandshake: cfg.Listener.MaxClientHello, MaxHTTPHead: cfg.Listener.MaxHTTPHeader},
		denyFull: cfg.Listener.DenyDetail == config.DenyDetailFull}
	for _, t := range cfg.Tenants {
		slot := slots[t.Name]
		snap.tenants[slot.ID] = &tenantState{name: t.Name, slot: slot, compiled: compiled[t.Name],
			forwarded: len(t.Interfaces) > 0 || len(t.SourceCIDRs) > 0}
	}
	return snap, nil
}

// Install makes snap current: caps and gates take the new limits, then the
// pointer swaps. Connections in flight keep their snapshot. Listen has
// opened snap's listeners before: they accept from then on, and until
// Install resets what they accept (see handle).
func (s *Proxy) Install(snap *Snapshot) {
	cfg := snap.cfg
	s.denials.setLimits(cfg.Log.DenialBurst, cfg.Log.DenialWindow.Duration)
	s.configureLimits(snap)
	s.metrics.tenantCount.Set(float64(len(cfg.Tenants)))
	s.state.Store(snap)
	// An address update that raced with the build reaches the new snapshot.
	if ha := s.hostAddrs.Load(); ha != nil {
		snap.policy.Classifier().SetHostRanges(*ha)
	}
}

// SetHostAddrs records the host's addresses and local routes (and the
// interface of each address) and applies them at once: they are always
// internal.
func (s *Proxy) SetHostAddrs(ranges []netip.Prefix, ifaces map[netip.Addr]string) {
	s.hostAddrs.Store(&ranges)
	s.addrIfaces.Store(&ifaces)
	if snap := s.state.Load(); snap != nil {
		snap.policy.Classifier().SetHostRanges(ranges)
	}
}

// ifaceOfAddr names the interface holding a host address ("" if unknown).
func (s *Proxy) ifaceOfAddr(a netip.Addr) string {
	if m := s.addrIfaces.Load(); m != nil {
		return (*m)[a.Unmap()]
	}
	return ""
}

// portListener is one tenant's pair of listening sockets.
type portListener struct {
	port    uint16
	wild    bool // bound to the wildcard addresses (a forwarded tenant)
	socks   []*net.TCPListener
	done    sync.WaitGroup
	closing chan struct{} // closed with the sockets: ends a pacing wait
	once    sync.Once
}

// listenAddrs are the addresses of a tenant's listener. A local-only tenant
// listens on loopback. A forwarded tenant's connections are REDIRECTed to
// the primary address of the interface they arrived on (the bridge
// gateway, say), so its listener is bound to the wildcard address instead:
// TPROXY finds the same transparent socket for 127.0.0.1 and ::1, and the
// input chain resets any connection to a listener port that was not DNATed
// by our rules, from the host itself or from elsewhere, so the wider bind
// exposes nothing. (Loopback and wildcard sockets cannot share a port
// without SO_REUSEPORT, which would let any process of the same uid join.)
func listenAddrs(forwarded bool) []string {
	if forwarded {
		return []string{"0.0.0.0", "::"}
	}
	return []string{"127.0.0.1", "::1"}
}

// Listen opens the sockets of every slot in snap that has none yet.
// IPv6 is optional: a host without ::1 serves IPv4 only, with a warning.
// The sockets are opened by a few workers at once (a reload to 1,000
// tenants opens 2,000 of them); on any failure none of the new ones stays.
func (s *Proxy) Listen(ctx context.Context, snap *Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var todo, flipped []*tenantState
	for slot, t := range snap.tenants {
		old, ok := s.listeners[slot]
		if ok && old.port == t.slot.Port && old.wild == t.forwarded {
			continue
		}
		if ok && old.port == t.slot.Port {
			// Same port, other addresses: the old sockets must go first.
			// Connections arriving meanwhile find no listener and are reset.
			old.close()
			delete(s.listeners, slot)
			flipped = append(flipped, &tenantState{name: t.name, slot: config.Slot{ID: slot, Port: old.port}, forwarded: old.wild})
		}
		todo = append(todo, t)
	}
	opened, err := s.openAll(ctx, todo)
	if err != nil {
		s.reopen(ctx, flipped)
		return err
	}
	for i, t := range todo {
		if old := s.listeners[t.slot.ID]; old != nil {
			old.close()
		}
		s.listeners[t.slot.ID] = opened[i]
		s.serveListener(opened[i], t.slot.ID)
	}
	return nil
}

// reopen puts back, after a failed apply, the listeners of slots whose
// sockets were closed to be re-opened on other addresses: the running
// config still sends those tenants' connections there.
func (s *Proxy) reopen(ctx context.Context, flipped []*tenantState) {
	for _, t := range flipped {
		pl, err := s.openTenant(ctx, t)
		if err != nil {
			s.log.Error("could not restore a listener after a failed reload; the tenant's connections are reset until the next good reload",
				"tenant", t.name, "port", t.slot.Port, "err", err)
			continue
		}
		s.listeners[t.slot.ID] = pl
		s.serveListener(pl, t.slot.ID)
	}
}

// listenWorkers bounds the sockets being opened at once.
const listenWorkers = 4

// openAll opens the listeners of todo, a few at a time. On failure it
// closes every socket it opened and returns the error of the first tenant
// (in todo's order) that failed.
func (s *Proxy) openAll(ctx context.Context, todo []*tenantState) ([]*portListener, error) {
	opened := make([]*portListener, len(todo))
	errs := make([]error, len(todo))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(listenWorkers, len(todo)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(todo); i = int(next.Add(1) - 1) {
				opened[i], errs[i] = s.openTenant(ctx, todo[i])
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, pl := range opened {
				if pl != nil {
					pl.closeSockets()
				}
			}
			return nil, err
		}
	}
	return opened, nil
}

// openTenant opens one tenant's sockets.
func (s *Proxy) openTenant(ctx context.Context, t *tenantState) (*portListener, error) {
	pl := &portListener{port: t.slot.Port, wild: t.forwarded, closing: make(chan struct{})}
	for _, ip := range listenAddrs(t.forwarded) {
		ln, err := s.kernel.Listen(ctx, netip.AddrPortFrom(netip.MustParseAddr(ip), t.slot.Port))
		if err != nil {
			if netip.MustParseAddr(ip).Is6() && errors.Is(err, syscall.EADDRNOTAVAIL) {
				s.log.Warn("IPv6 loopback unavailable; serving IPv4 only", "tenant", t.name, "port", t.slot.Port)
				continue
			}
			pl.closeSockets()
			return nil, fmt.Errorf("listen for tenant %q: %w", t.name, err)
		}
		pl.socks = append(pl.socks, ln)
	}
	return pl, nil
}

// Prune closes the listeners of slots the installed snapshot has no tenant
// for: after Install, those of removed tenants; after a failed apply, the
// ones its Listen opened. Without an installed snapshot it does nothing.
func (s *Proxy) Prune() {
	snap := s.state.Load()
	if snap == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for slot, pl := range s.listeners {
		if _, ok := snap.tenants[slot]; !ok {
			pl.close()
			delete(s.listeners, slot)
		}
	}
}

// Health is nil while an accept loop runs on every listening socket.
func (s *Proxy) Health() error {
	if n, want := int(s.accepting.Load()), s.listenerSockets(); n < want {
		return fmt.Errorf("%d of %d accept loops running", n, want)
	}
	return nil
}

// listenerSockets counts the open listening sockets, each of which must
// have an accept loop running.
func (s *Proxy) listenerSockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pl := range s.listeners {
		n += len(pl.socks)
	}
	return n
}

// Close stops accepting; live connections go on (see Drain).
func (s *Proxy) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for slot, pl := range s.listeners {
		pl.close()
		delete(s.listeners, slot)
	}
}

// close closes the sockets and waits for their accept loops to end.
func (pl *portListener) close() {
	pl.closeSockets()
	pl.done.Wait()
}

// closeSockets closes the sockets (of a listener not yet served, or before
// waiting).
func (pl *portListener) closeSockets() {
	pl.once.Do(func() { close(pl.closing) })
	for _, l := range pl.socks {
		l.Close()
	}
}

func (s *Proxy) serveListener(pl *portListener, slot uint32) {
	for _, ln := range pl.socks {
		pl.done.Add(1)
		s.accepting.Add(1)
		go func() {
			defer pl.done.Done()
			defer s.accepting.Add(-1)
			s.acceptLoop(ln, slot, pl.closing)
		}()
	}
}

func (s *Proxy) acceptLoop(ln *net.TCPListener, slot uint32, closing <-chan struct{}) {
	port := addrPortOf(ln.Addr()).Port()
	backoff := 5 * time.Millisecond
	for {
		s.pace(slot, closing)
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning; the kernel
			// queues (or resets) new connections meanwhile.
			s.log.Error("accept failed", "addr", ln.Addr().String(), "err", err)
			time.Sleep(backoff)
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.handle(c, slot, port)
		}()
	}
}

// Drain waits up to grace for live connections to end and reports whether
// they did.
func (s *Proxy) Drain(grace time.Duration) bool {
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(grace):
		return false
	}
}

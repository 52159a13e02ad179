package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egressfw/egressfw/internal/admission"
	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsfront"
	"github.com/egressfw/egressfw/internal/logfold"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/egressfw/egressfw/internal/sni"
	"github.com/egressfw/egressfw/internal/status"
	"github.com/egressfw/egressfw/internal/tenantdns"
	"github.com/egressfw/egressfw/internal/tproxy"
	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is one immutable generation of the running config, as the data
// path uses it: the policy (with its resolver) and each slot's tenant. A
// reload builds a new one (Build), opens its listeners (Listen) and swaps
// it in (Install); connections keep the one they started with, except
// that a plain-HTTP connection's later requests are judged by the running
// one (h1conn.follow).
type Snapshot struct {
	cfg      *config.Config
	policy   *policy.Policy
	resolver *resolver.Resolver      // the policy's, which answers tenants' DNS too
	tenants  map[uint32]*tenantState // by slot
	peekOpts sni.PeekOptions
	denyFull bool // listener.deny_detail = "full": refusals say why
}

// tenantOf is the tenant that holds slot in st under name, nil when none
// does (a reload removed it; a slot goes to no other tenant for two
// minutes, and the name check holds beyond that).
func (st *Snapshot) tenantOf(slot uint32, name string) *tenantState {
	if t := st.tenants[slot]; t != nil && t.name == name {
		return t
	}
	return nil
}

// tenantState is a tenant in one snapshot. Its shares outlive snapshots so
// the per-tenant caps count connections across reloads.
type tenantState struct {
	name      string
	slot      config.Slot
	compiled  *policy.CompiledTenant
	share     *admission.Share // of the proxied connections (Proxy.connPool)
	peekShare *admission.Share // of the connections still being peeked (Proxy.peekPool)
	pacer     *admission.Pacer // max_new_per_second; outlives snapshots like the shares
	// tracker counts the tenant's recent connections for egressfw status;
	// it outlives snapshots too.
	tracker *status.Tracker
	// forwarded tenants (interfaces, source_cidrs or docker_labels) also arrive by nat
	// REDIRECT on the primary address of their ingress interface, so their
	// listener is bound to the wildcard address (see listenAddrs).
	forwarded bool
	// dns is how egressfw answers the tenant's DNS, on slot.DNSPort; nil
	// when the tenant resolves names itself (dns = "direct").
	dns *tenantdns.Tenant
	// m is the tenant's per-connection series, resolved by Install.
	m tenantMetrics
}

// dnsPort is the port of the tenant's DNS listener, 0 for none.
func (t *tenantState) dnsPort() uint16 {
	if t.dns == nil {
		return 0
	}
	return t.slot.DNSPort
}

// Kernel is what the data path asks the kernel for: transparent listening
// sockets, for connections and for tenants' DNS (a UDP and a TCP socket on
// one address), and where an accepted connection was going, for a
// TPROXYed one (its local address) and for a forwarded tenant's
// REDIRECTed one (the NAT record). Packages tproxy and dnsfront in
// production; tests listen on plain loopback sockets and say where each
// connection was going (package proxytest).
type Kernel interface {
	Listen(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error)
	ListenDNS(ctx context.Context, ap netip.AddrPort) (*net.UDPConn, *net.TCPListener, error)
	OriginalDst(c *net.TCPConn) netip.AddrPort
	OriginalDstNAT(c *net.TCPConn) (netip.AddrPort, error)
}

// tproxyKernel is the kernel of package tproxy.
type tproxyKernel struct{}

func (tproxyKernel) Listen(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
	return tproxy.Listen(ctx, ap)
}
func (tproxyKernel) ListenDNS(ctx context.Context, ap netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	return dnsfront.ListenSockets(ctx, ap)
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

	connPool, peekPool *admission.Pool
	denials            *logfold.Limiter
	// dnsServer answers the tenants' DNS listeners; opened on first need
	// (its conntrack socket needs CAP_NET_ADMIN to be of use).
	dnsServer  func() (*dnsfront.Server, error)
	hostAddrs  atomic.Pointer[[]netip.Prefix] // the host's own addresses and local routes, always internal
	addrIfaces atomic.Pointer[map[netip.Addr]string]
	containers atomic.Pointer[map[netip.Addr]Container] // identified containers by address (SetContainers)

	mu        sync.Mutex
	pacers    map[string]*admission.Pacer // by tenant name
	listeners map[uint32]*portListener
	conns     sync.WaitGroup
	live      liveSet      // the connections relaying, which a reload rechecks
	accepting atomic.Int32 // accept loops running

	// trackers are the tenants' egressfw status, by name (under mu);
	// dnsStats counts the cache use of every snapshot's resolver.
	trackers map[string]*status.Tracker
	dnsStats resolver.CacheStats
}

// New returns a Proxy with no snapshot and no listeners.
func New(o Options) *Proxy {
	if o.Kernel == nil {
		o.Kernel = tproxyKernel{}
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	s := &Proxy{
		log: o.Log, dialer: o.Dialer, kernel: o.Kernel, mark: o.Mark,
		connPool: admission.NewPool(), peekPool: admission.NewPool(), denials: logfold.New(10, 10*time.Second),
		listeners: map[uint32]*portListener{}, pacers: map[string]*admission.Pacer{},
	}
	s.metrics = newMetrics(o.Metrics, &s.dnsStats)
	s.dnsServer = sync.OnceValues(func() (*dnsfront.Server, error) {
		return dnsfront.NewServer(dnsfront.Config{Decider: dnsDecider{s}, Observe: s.observeDNS})
	})
	return s
}

// Build compiles cfg with the given slots. It has no side effects, so a
// reload that fails here leaves everything as it was.
func (s *Proxy) Build(cfg *config.Config, slots map[string]config.Slot) (*Snapshot, error) {
	pol, compiled, res, err := newPolicy(cfg, s.mark, &s.dnsStats)
	if err != nil {
		return nil, err
	}
	if ha := s.hostAddrs.Load(); ha != nil {
		pol.Classifier().SetHostRanges(*ha)
	}
	snap := &Snapshot{cfg: cfg, policy: pol, resolver: res, tenants: map[uint32]*tenantState{},
		peekOpts: sni.PeekOptions{Timeout: cfg.Listener.PeekTimeout.Duration,
			MaxHandshake: cfg.Listener.MaxClientHello, MaxHTTPHead: cfg.Listener.MaxHTTPHeader},
		denyFull: cfg.Listener.DenyDetail == config.DenyDetailFull}
	for _, t := range cfg.Tenants {
		slot := slots[t.Name]
		snap.tenants[slot.ID] = &tenantState{name: t.Name, slot: slot, compiled: compiled[t.Name],
			forwarded: len(t.Interfaces) > 0 || len(t.SourceCIDRs) > 0 || t.Labelled(), dns: tenantdns.New(t)}
	}
	return snap, nil
}

// Install makes snap current: caps and gates take the new limits, then the
// pointer swaps. Connections in flight keep their snapshot, but the ones
// relaying that snap's config refuses are closed (recheck). Listen has
// opened snap's listeners before: they accept from then on, and until
// Install resets what they accept (see handle).
func (s *Proxy) Install(snap *Snapshot) {
	cfg := snap.cfg
	s.denials.SetLimits(cfg.Log.DenialBurst, cfg.Log.DenialWindow.Duration)
	s.configureLimits(snap)
	s.configureTrackers(snap)
	s.metrics.tenantCount.Set(float64(len(cfg.Tenants)))
	for _, t := range snap.tenants {
		t.m = s.metrics.forTenant(t.name)
	}
	s.state.Store(snap)
	// An address update that raced with the build reaches the new snapshot.
	if ha := s.hostAddrs.Load(); ha != nil {
		snap.policy.Classifier().SetHostRanges(*ha)
	}
	s.recheck(snap)
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

// Container names the container an address is bound to, for the log line.
type Container struct {
	Name string
	ID   string // short (12 characters), as docker ps shows it
}

// SetContainers replaces the identified containers' addresses. The caller
// gives only addresses the kernel binds to the container's bridge port (no
// other container can send from them), so the name in a log line is the
// container that opened the connection.
func (s *Proxy) SetContainers(byAddr map[netip.Addr]Container) {
	s.containers.Store(&byAddr)
}

// containerOf returns the container bound to address a, if any.
func (s *Proxy) containerOf(a netip.Addr) (Container, bool) {
	if m := s.containers.Load(); m != nil {
		c, ok := (*m)[a.Unmap()]
		return c, ok
	}
	return Container{}, false
}

// ifaceOfAddr names the interface holding a host address ("" if unknown).
func (s *Proxy) ifaceOfAddr(a netip.Addr) string {
	if m := s.addrIfaces.Load(); m != nil {
		return (*m)[a.Unmap()]
	}
	return ""
}

package resolver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/egressfw/egressfw/internal/dnsname"
	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Result is a successful lookup.
type Result struct {
	// Name is the name looked up, lower-case without a trailing dot.
	Name string
	// Addrs are the addresses, IPv4 (A) first then IPv6 (AAAA), in server
	// order, unmapped (::ffff:a.b.c.d becomes a.b.c.d) and deduplicated.
	// The slice is the caller's own copy.
	Addrs []netip.Addr
	// TTL is how long the answer may be reused: the clamped TTL of a fresh
	// answer, the time left for a cached one.
	TTL time.Duration
	// Server is the "ip:port" that supplied the addresses (the A answer's
	// when both families answered).
	Server string
	// Canonical is the end of the CNAME chain (Name when there was none).
	Canonical string
	// Aliases are the names of the CNAME chain after Name, in order,
	// lower-case without the trailing dot (both families' chains, each
	// name once); Canonical is the last. Empty without a CNAME.
	Aliases []string
	// Dropped counts the addresses the answer held beyond
	// Config.MaxAddrs, which are not in Addrs.
	Dropped int
	// Cached reports that the answer came from the cache.
	Cached bool
	// Partial, when non-nil, is why one address family failed; Addrs then
	// holds only the other family's answers.
	Partial error
	// Duration is how long this Lookup call took.
	Duration time.Duration

	// chains are the CNAME targets each family followed (IPv4, IPv6),
	// lower-case without the trailing dot, for Records.
	chains [2][]string
}

// Resolver resolves hostnames. It is safe for concurrent use.
type Resolver struct {
	servers  []string
	attempts int
	timeout  time.Duration
	minTTL   time.Duration
	maxTTL   time.Duration
	negTTL   time.Duration
	udp, tcp *dns.Client
	maxAddrs int
	cache    *cache // nil when disabled
	group    singleflight.Group
	now      func() time.Time
	stats    *CacheStats // nil: not counted
}

// New validates cfg and builds a Resolver. With no Servers it reads the
// nameservers from cfg.ResolvConf (default /etc/resolv.conf) once, now.
func New(cfg Config) (*Resolver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	servers, attempts, err := serversFrom(cfg)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Control: cfg.Control}
	r := &Resolver{
		servers:  servers,
		attempts: max(attempts, 1),
		timeout:  cfg.Timeout,
		minTTL:   cfg.MinTTL,
		maxTTL:   cfg.MaxTTL,
		negTTL:   cfg.NegativeTTL,
		maxAddrs: cfg.MaxAddrs,
		// Client.Timeout only stops miekg's 2s default from cutting our
		// context deadline short; the context decides.
		udp: &dns.Client{Net: "udp", Dialer: dialer, Timeout: cfg.Timeout, UDPSize: ednsSize},
		tcp: &dns.Client{Net: "tcp", Dialer: dialer, Timeout: cfg.Timeout},
		now: cfg.Now, stats: cfg.Stats,
	}
	if r.now == nil {
		r.now = time.Now
	}
	if cfg.CacheSize > 0 {
		r.cache = newCache(cfg.CacheSize, cfg.CacheBytes)
	}
	return r, nil
}

// serversFrom returns the configured servers, or resolv.conf's.
func serversFrom(cfg Config) ([]string, int, error) {
	if len(cfg.Servers) > 0 {
		servers, err := parseServers(cfg.Servers)
		return servers, cfg.Attempts, err
	}
	path := cfg.ResolvConf
	if path == "" {
		path = DefaultResolvConf
	}
	rc, err := ReadResolvConf(path)
	if err != nil {
		return nil, 0, fmt.Errorf("resolver: no servers configured: %w", err)
	}
	if len(rc.Servers) == 0 {
		return nil, 0, fmt.Errorf("resolver: no servers configured and no nameserver lines in %s", path)
	}
	attempts := cfg.Attempts
	if attempts == 0 {
		attempts = rc.Attempts
	}
	return rc.Servers, attempts, nil
}

// Servers returns the upstream servers in the order they are tried.
func (r *Resolver) Servers() []string { return slices.Clone(r.servers) }

// flight is what a coalesced resolution hands to every waiter.
type flight struct {
	a      *answer
	cached bool
}

// Lookup resolves name (a hostname, fully qualified with or without the
// trailing dot; search domains are never applied) to its addresses. Failures
// are *LookupError values matching ErrNXDomain, ErrNoAddresses,
// ErrServerFailure, ErrTimeout, ErrNetwork or ErrInvalidName; if ctx ends
// first the error wraps ctx's error, while the shared query carries on for
// other callers and the cache.
func (r *Resolver) Lookup(ctx context.Context, name string) (Result, error) {
	start := time.Now()
	key, ok := canonicalName(name)
	if !ok {
		return Result{}, newError(name, ErrInvalidName, "", nil)
	}
	if r.cache != nil {
		if a, ok := r.cache.get(key, r.now()); ok {
			r.stats.count(true)
			return r.result(key, a, true, start)
		}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("resolve %s: %w", key, context.Cause(ctx))
	}
	ch := r.group.DoChan(key, func() (any, error) { return r.resolve(key), nil })
	select {
	case res := <-ch:
		f := res.Val.(flight)
		r.stats.count(f.cached)
		return r.result(key, f.a, f.cached, start)
	case <-ctx.Done():
		return Result{}, fmt.Errorf("resolve %s: %w", key, context.Cause(ctx))
	}
}

// result turns a shared answer into one caller's Result or error.
func (r *Resolver) result(key string, a *answer, cached bool, start time.Time) (Result, error) {
	if a.err != nil {
		return Result{}, a.err
	}
	ttl := a.ttl
	if cached {
		ttl = max(a.expires.Sub(r.now()), 0)
	}
	return Result{
		Name:      key,
		Addrs:     slices.Clone(a.addrs),
		TTL:       ttl,
		Server:    a.server,
		Canonical: a.canonical,
		Aliases:   slices.Clone(a.aliases),
		Dropped:   a.dropped,
		Cached:    cached,
		Partial:   a.partial,
		Duration:  time.Since(start),
		chains:    a.chains,
	}, nil
}

// resolve queries both families at once within one timeout and caches the
// outcome. It runs once per name however many callers are waiting.
func (r *Resolver) resolve(key string) flight {
	// A caller may have missed the cache just before the previous flight
	// for this name stored its answer.
	if r.cache != nil {
		if a, ok := r.cache.get(key, r.now()); ok {
			return flight{a: a, cached: true}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	qname := key + "."
	var v4, v6 famResult
	var wg sync.WaitGroup
	wg.Go(func() { v4 = r.queryFamily(ctx, key, qname, dns.TypeA) })
	v6 = r.queryFamily(ctx, key, qname, dns.TypeAAAA)
	wg.Wait()
	a := r.combine(key, v4, v6)
	r.store(key, a)
	return flight{a: a}
}

// combine merges the two family outcomes: any addresses win; otherwise an
// NXDOMAIN, then NODATA from both, then the most telling failure.
func (r *Resolver) combine(key string, v4, v6 famResult) *answer {
	if len(v4.addrs)+len(v6.addrs) > 0 {
		a := &answer{aliases: aliasNames(v4.aliases, v6.aliases),
			chains: [2][]string{aliasNames(v4.aliases), aliasNames(v6.aliases)}}
		a.addrs, a.dropped = capAddrs(dedup(v4.addrs, v6.addrs), r.maxAddrs)
		ttl := uint32(1<<32 - 1)
		for _, f := range []famResult{v4, v6} {
			if len(f.addrs) == 0 {
				if isFailure(f.err) {
					a.partial = f.err
				}
				continue
			}
			ttl = min(ttl, f.ttl)
			if a.server == "" {
				a.server, a.canonical = f.server, strings.ToLower(strings.TrimSuffix(f.canonical, "."))
			}
		}
		a.ttl = min(max(time.Duration(ttl)*time.Second, r.minTTL), r.maxTTL)
		return a
	}
	for _, f := range []famResult{v4, v6} {
		if f.err.Kind == ErrNXDomain {
			return &answer{err: f.err}
		}
	}
	if v4.err.Kind == ErrNoAddresses && v6.err.Kind == ErrNoAddresses {
		return &answer{err: v4.err}
	}
	if failRank(v6.err) > failRank(v4.err) {
		return &answer{err: v6.err}
	}
	return &answer{err: v4.err}
}

// store caches a: positive answers for their clamped TTL (partial ones no
// longer than NegativeTTL), NXDOMAIN/NODATA for NegativeTTL, failures never.
func (r *Resolver) store(key string, a *answer) {
	if r.cache == nil {
		return
	}
	var ttl time.Duration
	switch {
	case a.err == nil && a.partial == nil:
		ttl = a.ttl
	case a.err == nil:
		ttl = min(a.ttl, r.negTTL)
	case a.err.Kind == ErrNXDomain || a.err.Kind == ErrNoAddresses:
		ttl = r.negTTL
	}
	if ttl <= 0 {
		return
	}
	a.expires = r.now().Add(ttl)
	r.cache.put(key, a)
}

// dedup concatenates the families, dropping repeated addresses.
func dedup(v4, v6 []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(v4)+len(v6))
	seen := make(map[netip.Addr]struct{}, cap(out))
	for _, fam := range [][]netip.Addr{v4, v6} {
		for _, a := range fam {
			if _, dup := seen[a]; !dup {
				seen[a] = struct{}{}
				out = append(out, a)
			}
		}
	}
	return out
}

// canonicalName checks name is a plain hostname and returns it lower-case
// without a trailing dot: dnsname's canonical form, which the data path's
// names are in already. Anything else (escapes, spaces, empty labels,
// Unicode) is refused rather than handed to the DNS library's
// presentation-format rules.
func canonicalName(name string) (string, bool) {
	n, err := dnsname.Normalize(name)
	in := strings.TrimSuffix(name, ".")
	// n is ASCII: the same length rules out a Unicode letter that folds
	// to an ASCII one (U+017F, U+212A).
	if err != nil || len(n) != len(in) || !strings.EqualFold(n, in) {
		return "", false
	}
	return n, true
}

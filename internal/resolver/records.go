package resolver

import (
	"context"
	"errors"
	"fmt"
	"github.com/egressfw/egressfw/internal/dnsname"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Serving tenants. egressfw answers its tenants' DNS queries (package
// dnsfront) from this resolver: A and AAAA answers are built from the very
// Result that Lookup returns and caches for the proxy (Result.Records), so
// the addresses a tenant is told are the ones the proxy validated, and one
// upstream query per name and TTL serves both. Other types (HTTPS, SVCB,
// and whatever a tenant's query types widen to) are queried upstream by
// Query with the same servers, timeout, CNAME bound, record bound
// (Config.MaxAddrs) and cache (entries and bytes) as addresses.

// Answer is the outcome of Query: the answer section of a reply to a
// tenant's question, empty for NODATA.
type Answer struct {
	// Name is the name asked for, lower-case without a trailing dot.
	Name string
	// Type is the question type.
	Type uint16
	// Records are the CNAME chain from Name, in order, then the records
	// of Type owned by its end; owners are lower-case FQDNs and every TTL
	// is the answer's remaining TTL. They are the caller's own copies.
	Records []dns.RR
	// Aliases are the chain's targets, lower-case without the trailing dot.
	Aliases []string
	// TTL is how long the answer may still be used.
	TTL time.Duration
	// Dropped counts the records beyond Config.MaxAddrs, not in Records.
	Dropped int
	// Cached reports that the answer came from the cache.
	Cached bool
	// Server is the "ip:port" that supplied the answer ("" for NODATA of
	// an address type).
	Server string
	// Duration is how long the Query call took.
	Duration time.Duration
}

// Records returns the answer section for a question of qtype (A, AAAA or
// CNAME) about r.Name, built from r alone: the CNAME chain the family
// followed (the other family's when this one had no answer), then one A or
// AAAA record per address of that family in r.Addrs, owned by the chain's
// end, with r.TTL. For CNAME it is the first link of the chain. A family
// without addresses (NODATA) yields the chain only; any other qtype
// yields nothing.
func (r Result) Records(qtype uint16) []dns.RR {
	ttl := ttlSeconds(r.TTL)
	fam := 0
	if qtype == dns.TypeAAAA {
		fam = 1
	}
	chain := r.chains[fam]
	if len(chain) == 0 {
		chain = r.chains[1-fam]
	}
	rrs := chainRecords(r.Name, chain, ttl)
	switch qtype {
	case dns.TypeCNAME:
		return rrs[:min(len(rrs), 1)]
	case dns.TypeA, dns.TypeAAAA:
	default:
		return nil
	}
	hdr := dns.RR_Header{Name: dns.Fqdn(chainEnd(r.Name, chain)), Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
	for _, a := range r.Addrs {
		switch {
		case qtype == dns.TypeA && a.Is4():
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case qtype == dns.TypeAAAA && a.Is6():
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return rrs
}

// chainRecords returns the CNAME records of the chain from name through
// aliases (names without the trailing dot).
func chainRecords(name string, aliases []string, ttl uint32) []dns.RR {
	rrs := make([]dns.RR, 0, len(aliases)+1)
	owner := name
	for _, target := range aliases {
		rrs = append(rrs, &dns.CNAME{Hdr: dns.RR_Header{Name: dns.Fqdn(owner), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
			Target: dns.Fqdn(target)})
		owner = target
	}
	return rrs
}

// ttlSeconds is a remaining TTL in whole seconds, as a record carries it.
func ttlSeconds(d time.Duration) uint32 {
	return uint32(min(max(d, 0)/time.Second, 1<<31-1))
}

// Query answers a tenant's question of qtype about name. A, AAAA and
// CNAME come from Lookup (Result.Records): a caller that validates the
// addresses first should call Lookup itself and build the answer from that
// Result, so that the answer is exactly what it validated. Other types are
// queried upstream and cached under their own key. NODATA is an Answer
// without records (the CNAME chain alone, when there is one), not an
// error; failures are *LookupError values as for Lookup (ErrNXDomain,
// ErrServerFailure, ErrTimeout, ErrNetwork, ErrInvalidName), and a type
// dnsname.DataType refuses is ErrQueryType.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (Answer, error) {
	start := time.Now()
	key, ok := canonicalName(name)
	if !ok {
		return Answer{}, newError(name, ErrInvalidName, "", nil)
	}
	if !dnsname.DataType(qtype) {
		return Answer{}, newError(name, ErrQueryType, "", fmt.Errorf("type %s", dns.Type(qtype)))
	}
	if qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeCNAME {
		return r.queryAddrs(ctx, key, qtype, start)
	}
	ckey := key + "/" + strconv.Itoa(int(qtype)) // '/' is in no canonical name
	if r.cache != nil {
		if a, ok := r.cache.get(ckey, r.now()); ok {
			r.stats.count(true)
			return r.answerOf(key, qtype, a, true, start)
		}
	}
	if err := ctx.Err(); err != nil {
		return Answer{}, fmt.Errorf("query %s %s: %w", key, dns.Type(qtype), context.Cause(ctx))
	}
	ch := r.group.DoChan(ckey, func() (any, error) { return r.resolveType(ckey, key, qtype), nil })
	select {
	case res := <-ch:
		f := res.Val.(flight)
		r.stats.count(f.cached)
		return r.answerOf(key, qtype, f.a, f.cached, start)
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("query %s %s: %w", key, dns.Type(qtype), context.Cause(ctx))
	}
}

// queryAddrs answers A, AAAA and CNAME from Lookup.
func (r *Resolver) queryAddrs(ctx context.Context, key string, qtype uint16, start time.Time) (Answer, error) {
	res, err := r.Lookup(ctx, key)
	a, err := AnswerOf(key, qtype, res, err)
	a.Duration = time.Since(start)
	return a, err
}

// AnswerOf is the Answer to a question of qtype (A, AAAA or CNAME) about
// name built from the outcome of Lookup(name) alone, as Query builds it:
// the records of res (Result.Records), NODATA for ErrNoAddresses, the
// lookup's error for any other failure, and res.Partial when the family
// asked for is the one that failed. A caller that validated res answers
// with exactly what it validated.
func AnswerOf(name string, qtype uint16, res Result, err error) (Answer, error) {
	if errors.Is(err, ErrNoAddresses) {
		return Answer{Name: name, Type: qtype}, nil
	}
	if err != nil {
		return Answer{}, err
	}
	if res.Partial != nil && qtype != dns.TypeCNAME && !slices.ContainsFunc(res.Addrs, func(a netip.Addr) bool { return a.Is4() == (qtype == dns.TypeA) }) {
		return Answer{}, res.Partial // the asked family is the one that failed
	}
	rrs := res.Records(qtype)
	return Answer{Name: res.Name, Type: qtype, Records: rrs, Aliases: res.Aliases, TTL: res.TTL, Dropped: res.Dropped,
		Cached: res.Cached, Server: res.Server, Duration: res.Duration}, nil
}

// resolveType queries the servers for qtype records of key and caches the
// outcome under ckey. It runs once per ckey however many callers wait.
func (r *Resolver) resolveType(ckey, key string, qtype uint16) flight {
	if r.cache != nil {
		if a, ok := r.cache.get(ckey, r.now()); ok {
			return flight{a: a, cached: true}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	f := r.queryFamily(ctx, key, key+".", qtype)
	a := &answer{server: f.server, aliases: aliasNames(f.aliases), dropped: f.dropped}
	switch {
	case f.err == nil:
		a.rrs = f.rrs
		for _, rr := range a.rrs {
			rr.Header().Name = strings.ToLower(f.canonical)
		}
		a.ttl = min(max(time.Duration(f.ttl)*time.Second, r.minTTL), r.maxTTL)
	case f.err.Kind == ErrNoAddresses: // NODATA: an answer without records
		a.ttl = r.negTTL
	default:
		a = &answer{err: f.err}
	}
	r.store(ckey, a)
	return flight{a: a}
}

// answerOf turns a shared answer into one caller's Answer or error.
func (r *Resolver) answerOf(key string, qtype uint16, a *answer, cached bool, start time.Time) (Answer, error) {
	if a.err != nil {
		return Answer{}, a.err
	}
	ttl := a.ttl
	if cached {
		ttl = max(a.expires.Sub(r.now()), 0)
	}
	secs := ttlSeconds(ttl)
	rrs := chainRecords(key, a.aliases, secs)
	for _, rr := range a.rrs {
		c := dns.Copy(rr)
		c.Header().Ttl = secs
		rrs = append(rrs, c)
	}
	return Answer{Name: key, Type: qtype, Records: rrs, Aliases: append([]string(nil), a.aliases...), TTL: ttl,
		Dropped: a.dropped, Cached: cached, Server: a.server, Duration: time.Since(start)}, nil
}

// records classifies a successful reply to a question of a type other than
// A and AAAA: the chain from qname, then at most MaxAddrs records of qtype
// owned by its end.
func (r *Resolver) records(resp *dns.Msg, name, qname string, qtype uint16, server string) famResult {
	target, ttl, aliases, err := followChain(resp, qname)
	if err != nil {
		return famResult{err: newError(name, ErrServerFailure, server, err)}
	}
	rrs := owned(resp.Answer, target, qtype)
	if len(rrs) == 0 {
		return famResult{aliases: aliases, server: server, err: newError(name, ErrNoAddresses, server, nil)}
	}
	for _, rr := range rrs {
		ttl = min(ttl, rr.Header().Ttl)
	}
	keep := min(len(rrs), r.maxAddrs)
	return famResult{rrs: rrs[:keep], dropped: len(rrs) - keep, ttl: ttl, canonical: target, aliases: aliases, server: server}
}

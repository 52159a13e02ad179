package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsfront"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/miekg/dns"
)

// Tenants' DNS. A tenant whose DNS egressfw answers (dns = "egressfw") has
// a DNS listener per slot (dnsfront, opened with its TCP listener, see
// listen.go), to which the kernel redirects every query it sends to port
// 53. A query is answered by answerQuery, which `egressfw explain --dns`
// calls too: the tenant's query types, then the name as a connection to it
// would be judged (policy.DecideLookup: the name rules, one lookup, every
// alias and address), and the answer built from the very lookup that was
// judged, so the address a tenant connects to is one egressfw validated.
// Every refusal of a name is NXDOMAIN, the answer of a name that does not
// exist (see dnsfront); a type the tenant may not ask is REFUSED.

// tenantDNS is how egressfw answers one tenant's DNS.
type tenantDNS struct {
	types []uint16       // dns_query_types
	strip dnsfront.Strip // applied to every answer
}

// newTenantDNS converts a validated config tenant; nil when the tenant
// resolves names itself (dns = "direct").
func newTenantDNS(t config.Tenant) *tenantDNS {
	if t.DNS != config.DNSEgressfw {
		return nil
	}
	td := &tenantDNS{strip: dnsfront.Strip{ECH: t.StripECH, QUIC: !quicAllowed(t.AllowDirect), Hints: true}}
	for _, name := range t.DNSQueryTypes {
		td.types = append(td.types, dns.StringToType[name])
	}
	return td
}

// quicAllowed reports whether allow_direct lets the tenant send UDP to
// port 443 of every address of a family: only then are QUIC-only ALPN
// values (h3) left in its answers; otherwise a client would try QUIC
// first and wait for it to fail.
func quicAllowed(direct []config.AllowDirect) bool {
	for _, d := range direct {
		if d.CIDR.Bits() == 0 && d.Protocol != "tcp" && (len(d.Ports) == 0 || slices.Contains(d.Ports, 443)) {
			return true
		}
	}
	return false
}

// dnsAnswer is egressfw's answer to one question of a tenant: what the
// tenant is sent, and the policy's verdict it rests on.
type dnsAnswer struct {
	front   dnsfront.Decision
	verdict policy.Decision
	cached  bool
}

// answerQuery answers a tenant's question of qtype about name (normalised)
// with the tenant's policy t and DNS settings td: the data path's DNS
// listeners and `egressfw explain --dns` both call it. full tells the
// reason of a refusal (listener.deny_detail = "full").
func answerQuery(ctx context.Context, pol *policy.Policy, res *resolver.Resolver, t *policy.CompiledTenant, td *tenantDNS,
	name string, qtype uint16, full bool) (out dnsAnswer) {
	if !slices.Contains(td.types, qtype) {
		v := policy.Deny(t, netip.AddrPort{}, policy.CodeQueryType, fmt.Sprintf("query type %s is not in dns_query_types", dns.Type(qtype)))
		v.Name = name
		if !v.Allow {
			return refusal(v, dnsfront.Refused, full)
		}
		return reported(ctx, res, td, v, qtype) // report mode: asked, answered
	}
	var lr resolver.Result
	var lerr error
	lookup := func(ctx context.Context, name string) (policy.Answer, error) {
		lr, lerr = res.Lookup(ctx, name)
		return policyAnswer(lr, lerr)
	}
	v := pol.DecideLookup(ctx, t, name, lookup)
	switch c := v.Code; {
	case c == policy.CodeAllowed, c == policy.CodeNoAddresses, c == policy.CodeDNSNoAddresses:
		// Public (or covered), or a name without addresses: nothing to refuse.
	case c == policy.CodeDNSNXDomain:
		return dnsAnswer{front: dnsfront.Decision{Verdict: dnsfront.NXDomain, Reason: c.String()}, verdict: v, cached: lr.Cached}
	case c.IsDNS():
		return dnsAnswer{front: dnsfront.Decision{Verdict: dnsfront.ServFail, Reason: c.String()}, verdict: v}
	case !v.Allow:
		out = refusal(v, dnsfront.NXDomain, full)
		out.cached = lr.Cached
		return out
	default:
		return reported(ctx, res, td, v, qtype)
	}
	if qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeCNAME {
		a, err := resolver.AnswerOf(name, qtype, lr, lerr)
		return answered(td, v, a, err)
	}
	a, err := res.Query(ctx, name, qtype)
	if err == nil {
		if av := policy.CheckAliases(t, name, a.Aliases); av.Code != policy.CodeAllowed {
			av.Answer = v.Answer
			if !av.Allow {
				return refusal(av, dnsfront.NXDomain, full)
			}
			return reported(ctx, res, td, av, qtype)
		}
	}
	return answered(td, v, a, err)
}

// refusal is the answer to a refused question: rcode, logged, the reason
// told only when full.
func refusal(v policy.Decision, rcode dnsfront.Verdict, full bool) dnsAnswer {
	d := dnsfront.Decision{Verdict: rcode, Reason: v.Code.String(), Log: true, Detail: v.Detail}
	if full {
		d.Tell = v.TenantMessage()
	}
	return dnsAnswer{front: d, verdict: v}
}

// reported answers, in report mode, a question enforce mode refuses: as
// the resolver answers it, logged as what enforce mode would refuse.
func reported(ctx context.Context, res *resolver.Resolver, td *tenantDNS, v policy.Decision, qtype uint16) dnsAnswer {
	a, err := res.Query(ctx, v.Name, qtype)
	out := answered(td, v, a, err)
	out.front.Reason, out.front.Log, out.front.Detail = v.Code.String(), true, v.Detail
	return out
}

// answered is the answer a or, for its error, the rcode the resolver's
// failure calls for.
func answered(td *tenantDNS, v policy.Decision, a resolver.Answer, err error) dnsAnswer {
	if err != nil {
		d := dnsfront.Decision{Verdict: dnsfront.ServFail, Reason: policy.CodeDNSFailure.String()}
		switch {
		case errors.Is(err, resolver.ErrNXDomain), errors.Is(err, resolver.ErrInvalidName):
			d.Verdict, d.Reason = dnsfront.NXDomain, policy.CodeDNSNXDomain.String()
		case errors.Is(err, resolver.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			d.Reason = policy.CodeDNSTimeout.String()
		}
		return dnsAnswer{front: d, verdict: v}
	}
	return dnsAnswer{front: dnsfront.Decision{Verdict: dnsfront.Answer, Records: a.Records, Strip: td.strip,
		Reason: v.Code.String()}, verdict: v, cached: a.Cached}
}

// policyAnswer is a lookup's outcome as the policy judges it: the answer,
// and for a failure the DNS code it is.
func policyAnswer(r resolver.Result, err error) (policy.Answer, error) {
	a := policy.Answer{Addrs: r.Addrs, Aliases: r.Aliases, Dropped: r.Dropped, Server: r.Server, Duration: r.Duration}
	if err != nil {
		return a, &policy.LookupError{Code: dnsCode(err), Err: err}
	}
	return a, nil
}

// dnsDecider decides the queries of the Proxy's DNS listeners
// (dnsfront.Decider): the listener's slot is the tenant, judged by the
// snapshot installed when the query arrived.
type dnsDecider struct{ s *Proxy }

// Decide implements dnsfront.Decider.
func (d dnsDecider) Decide(ctx context.Context, q *dnsfront.Query) dnsfront.Decision {
	st := d.s.state.Load()
	var t *tenantState
	if st != nil {
		t = st.tenants[q.Slot]
	}
	if t == nil || t.dns == nil {
		return dnsfront.Decision{Verdict: dnsfront.Refused, Reason: policy.CodeNoTenant.String(), Log: true,
			Detail: fmt.Sprintf("no tenant whose DNS egressfw answers holds slot %d (before the first config is installed, or after a reload)", q.Slot)}
	}
	a := answerQuery(ctx, st.policy, st.resolver, t.compiled, t.dns, q.Name, q.Type, st.denyFull)
	if a.cached {
		d.s.metrics.dns.cacheHits.WithLabelValues(t.name).Inc()
	}
	return a.front
}

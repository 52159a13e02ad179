package tenantdns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsfront"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/miekg/dns"
)

// Tenant is how egressfw answers one tenant's DNS. The zero value
// answers no query type.
type Tenant struct {
	types []uint16       // dns_query_types
	strip dnsfront.Strip // applied to every answer
}

// New converts a validated config tenant; nil when the tenant resolves
// names itself (dns = "direct").
func New(t config.Tenant) *Tenant {
	if t.DNS != config.DNSEgressfw {
		return nil
	}
	td := &Tenant{strip: dnsfront.Strip{ECH: t.StripECH, QUIC: !quicAllowed(t.AllowDirect), Hints: true}}
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

// Result is egressfw's answer to one question of a tenant: what the
// tenant is sent, and the policy's verdict it rests on.
type Result struct {
	Front   dnsfront.Decision
	Verdict policy.Decision
	Cached  bool // the lookup was answered from the resolver's cache
}

// Answer answers the tenant's question of qtype about name (normalised)
// with its policy t, the lookups made with res: the data path's DNS
// listeners and `egressfw explain --dns` both call it. full tells the
// reason of a refusal (listener.deny_detail = "full").
func (td *Tenant) Answer(ctx context.Context, pol *policy.Policy, res *resolver.Resolver, t *policy.CompiledTenant,
	name string, qtype uint16, full bool) (out Result) {
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
	looked := false
	lookup := func(ctx context.Context, name string) (policy.Answer, error) {
		looked = true
		lr, lerr = res.Lookup(ctx, name)
		return policyAnswer(lr, lerr)
	}
	v := pol.DecideLookup(ctx, t, name, lookup)
	switch c := v.Code; {
	case c == policy.CodeAllowed, c == policy.CodeNoAddresses, c == policy.CodeDNSNoAddresses:
		// Public (or covered), or a name without addresses: nothing to refuse.
	case c.IsDNS():
		return Result{Front: failure(c), Verdict: v, Cached: lr.Cached}
	case !v.Allow:
		out = refusal(v, dnsfront.NXDomain, full)
		out.Cached = lr.Cached
		return out
	default:
		if looked && addressType(qtype) {
			// Report mode: the lookup the policy judged is the answer; asking
			// again could answer differently (DNS rebinding).
			a, err := resolver.AnswerOf(name, qtype, lr, lerr)
			return logged(answered(td, v, a, err), v)
		}
		return reported(ctx, res, td, v, qtype)
	}
	if addressType(qtype) {
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
			// Report mode: the answer judged is the answer given; asking
			// again could answer differently.
			return logged(answered(td, av, a, nil), av)
		}
	}
	return answered(td, v, a, err)
}

// failure is the answer to a question the resolver failed with code c:
// NXDOMAIN for a name that does not exist, else SERVFAIL.
func failure(c policy.Code) dnsfront.Decision {
	if c == policy.CodeDNSNXDomain {
		return dnsfront.Decision{Verdict: dnsfront.NXDomain, Reason: c.String()}
	}
	return dnsfront.Decision{Verdict: dnsfront.ServFail, Reason: c.String()}
}

// addressType reports whether qtype is answered from a name's lookup.
func addressType(qtype uint16) bool {
	return qtype == dns.TypeA || qtype == dns.TypeAAAA || qtype == dns.TypeCNAME
}

// refusal is the answer to a refused question: rcode, logged, the reason
// told only when full.
func refusal(v policy.Decision, rcode dnsfront.Verdict, full bool) Result {
	d := dnsfront.Decision{Verdict: rcode, Reason: v.Code.String(), Log: true, Detail: v.Detail}
	if full {
		d.Tell = v.TenantMessage()
	}
	return Result{Front: d, Verdict: v}
}

// reported answers, in report mode, a question enforce mode refuses: as
// the resolver answers it, logged as what enforce mode would refuse.
func reported(ctx context.Context, res *resolver.Resolver, td *Tenant, v policy.Decision, qtype uint16) Result {
	a, err := res.Query(ctx, v.Name, qtype)
	return logged(answered(td, v, a, err), v)
}

// logged marks out as an answer enforce mode would refuse for v.
func logged(out Result, v policy.Decision) Result {
	out.Front.Reason, out.Front.Log, out.Front.Detail = v.Code.String(), true, v.Detail
	return out
}

// answered is the answer a or, for its error, the rcode the resolver's
// failure calls for.
func answered(td *Tenant, v policy.Decision, a resolver.Answer, err error) Result {
	if err != nil {
		return Result{Front: failure(dnsCode(err)), Verdict: v}
	}
	return Result{Front: dnsfront.Decision{Verdict: dnsfront.Answer, Records: a.Records, Strip: td.strip,
		Reason: v.Code.String()}, Verdict: v, Cached: a.Cached}
}

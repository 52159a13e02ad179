package policy

import (
	"context"
	"net/netip"
)

// A tenant's DNS. egressfw answers its tenants' DNS queries from its own
// resolver (internal/dnsfront, internal/tenantdns); a lookup is judged by the
// rules a connection to the name would be, so that a tenant is told only
// addresses it could connect to: a name the tenant may not reach, or whose
// addresses are internal, is answered as if it did not exist.

const detailAllowedLookup = "allowed: every address is public or covered by allow_internal"

// DecideLookup judges a tenant's DNS lookup of name as Decide judges a
// connection to it, before there is one: the name rules first (a name they
// refuse is never sent to DNS), then the name's lookup, once, with lookup
// (nil: the policy's own), every alias against deny_domains and every
// address, of which an internal one must be covered by an allow_internal
// entry (on any of its ports: a lookup has none); then the tenant's mode.
// The decision's Answer holds what was judged, which is what the tenant
// may be told; Dial is not set.
func (p *Policy) DecideLookup(ctx context.Context, t *CompiledTenant, name string, lookup Lookup) Decision {
	if t == nil {
		return noTenant()
	}
	if lookup == nil {
		lookup = p.lookup
	}
	d := Decision{Name: name}
	v := p.decideName(ctx, t, &Request{Name: name}, &d.Answer, lookup)
	if v.allow {
		v.dial, v.detail = netip.AddrPort{}, detailAllowedLookup
	}
	t.finish(&d, v, netip.AddrPort{})
	return d
}

// CheckAliases judges against deny_domains the CNAME chain of another
// answer about name, such as an HTTPS record's, as DecideLookup judges the
// chain to the name's addresses. Its Code is CodeAllowed when no name of
// the chain is denied; a denial is finished by the tenant's mode (report
// mode lets it through).
func CheckAliases(t *CompiledTenant, name string, aliases []string) Decision {
	d := Decision{Name: name}
	if t == nil {
		return noTenant()
	}
	v := t.checkAliases(name, aliases)
	if v.code == CodeAllowed {
		v.allow, v.detail = true, detailAllowedLookup
	}
	t.finish(&d, v, netip.AddrPort{})
	return d
}

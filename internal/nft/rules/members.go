package rules

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables/expr"
)

// stays returns the rules (each starting with start(), or with nothing
// when start is nil) that match a tenant's packet which stays between
// members of the tenant: it leaves by one of the tenant's interfaces to
// an address in its source ranges. A tenant without source ranges has no
// address to check: whatever leaves by its interfaces is not rejected (as
// before; its TCP to an intercept port is still intercepted, there is no
// range to exempt in nat). A tenant without interfaces (pods) has none to
// leave by: its interface
// is the one the packet came in on, so only traffic that leaves by the
// interface it arrived on to an address in the ranges stays (pods on one
// bridge); pods behind other interfaces (other nodes) are egress.
//
// In the forward hook (out) the output interface is known; in nat
// prerouting it is not yet, so the route lookup the kernel will make is
// made here (fib daddr oifname): a destination routed elsewhere, even one
// inside the ranges (a LAN host in 172.16.0.0/12), and the host's own
// addresses (fib finds no output interface for them) are not between
// members. The forward hook checks the real output interface again.
func stays(t *nftspec.Tenant, start func() *RuleDef, out bool) []*RuleDef {
	begin := func() *RuleDef {
		if start == nil {
			return &RuleDef{}
		}
		return start()
	}
	var rules []*RuleDef
	if len(t.Interfaces) == 0 {
		for _, p := range t.Sources {
			r := begin()
			if !sameFamily(r, p) {
				continue
			}
			r.add(daddrText(p), daddr(p)...)
			rules = append(rules, r.add("fib daddr . iif oif exists",
				&expr.Fib{FlagDADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ne32(1)}))
		}
		return rules
	}
	if len(t.Sources) == 0 {
		if out {
			for _, n := range t.Interfaces {
				rules = append(rules, begin().add(ifnameText(true, n), iifname(true, n)...))
			}
		}
		return rules
	}
	for _, n := range t.Interfaces {
		for _, p := range t.Sources {
			r := begin()
			if out {
				r.add(ifnameText(true, n), iifname(true, n)...)
				rules = append(rules, r.add(daddrText(p), daddr(p)...))
				continue
			}
			r.add(daddrText(p), daddr(p)...)
			rules = append(rules, r.add(fmt.Sprintf("fib daddr oifname %q", n), fibOifname(n)...))
		}
	}
	return rules
}

// fibOifname matches the name of the interface the route to the
// destination leaves by against an interface pattern. For the host's own
// addresses the kernel stores no name (only zeroes), which no pattern
// matches.
func fibOifname(pattern string) []expr.Any {
	data := ifname(pattern)
	if base, wild := strings.CutSuffix(pattern, "*"); wild {
		data = []byte(base)
	}
	return []expr.Any{&expr.Fib{FlagDADDR: true, ResultOIFNAME: true, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: data}}
}

// sameFamily reports whether r (a classifier match) can match a packet of
// p's family: a source-range classifier fixes the family.
func sameFamily(r *RuleDef, p netip.Prefix) bool {
	if len(r.words) == 0 {
		return true
	}
	w := r.words[0]
	return !(strings.HasPrefix(w, "ip saddr") && p.Addr().Is6() || strings.HasPrefix(w, "ip6 saddr") && p.Addr().Is4())
}

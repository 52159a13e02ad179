package resolver

import (
	"net/netip"
	"slices"
	"strings"
)

// capAddrs keeps at most limit of addrs (IPv4 first, then IPv6, each in
// server order) and returns how many it dropped. Each family keeps up to
// half of the limit, and what one family leaves unused goes to the other,
// so a flood of one family cannot crowd the other out.
func capAddrs(addrs []netip.Addr, limit int) ([]netip.Addr, int) {
	if len(addrs) <= limit {
		return addrs, 0
	}
	n4 := 0
	for _, a := range addrs {
		if a.Is4() {
			n4++
		}
	}
	keep6 := min(len(addrs)-n4, max(limit/2, limit-n4))
	keep4 := min(n4, limit-keep6)
	out := make([]netip.Addr, 0, keep4+keep6)
	for _, a := range addrs {
		if a.Is4() && keep4 > 0 {
			out, keep4 = append(out, a), keep4-1
		} else if !a.Is4() && keep6 > 0 {
			out, keep6 = append(out, a), keep6-1
		}
	}
	return out, len(addrs) - len(out)
}

// aliasNames merges the families' CNAME chains into one list of names,
// lower-case without the trailing dot, each once, in the order met.
func aliasNames(chains ...[]string) []string {
	var out []string
	for _, chain := range chains {
		for _, n := range chain {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

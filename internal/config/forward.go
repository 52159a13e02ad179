package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// forwardClaims collects the interfaces and source ranges tenants claim, so
// that one claimed by two tenants is reported with both names.
type forwardClaims struct {
	ifaces  []claim[string]
	sources []claim[netip.Prefix]
}

type claim[T any] struct {
	what   T
	tenant string
}

// check validates a tenant's interfaces and source_cidrs and records them.
func (f *forwardClaims) check(v *validator, key string, t *Tenant) {
	for i, name := range t.Interfaces {
		k := fmt.Sprintf("%s.interfaces[%d]", key, i)
		if err := CheckInterfacePattern(name); err != nil {
			v.add(k, "%v", err)
			continue
		}
		for _, o := range f.ifaces {
			if InterfacePatternsOverlap(name, o.what) {
				v.add(k, "%q overlaps %q of tenant %q", name, o.what, o.tenant)
			}
		}
		f.ifaces = append(f.ifaces, claim[string]{name, t.Name})
	}
	for i, p := range t.SourceCIDRs {
		k := fmt.Sprintf("%s.source_cidrs[%d]", key, i)
		checkPrefix(v, k, p)
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() {
			v.add(k, "%s is IPv4-mapped; write the IPv4 range", p)
			continue
		}
		for _, o := range f.sources {
			if p.Overlaps(o.what) {
				v.add(k, "%s overlaps %s of tenant %q", p, o.what, o.tenant)
			}
		}
		f.sources = append(f.sources, claim[netip.Prefix]{p, t.Name})
	}
}

// CheckInterfacePattern accepts an interface name as Linux does (1-15
// bytes, no '/', ':' or white space) or such a prefix followed by '*'.
// "lo" and a bare "*" are refused: forwarded traffic never arrives on lo,
// and "*" would claim the uplink and every other interface.
func CheckInterfacePattern(p string) error {
	base, wild := strings.CutSuffix(p, "*")
	switch {
	case p == "*":
		return fmt.Errorf("%q would claim every interface, the uplink too; name the bridges, like \"br-*\"", p)
	case base == "lo" && !wild:
		return fmt.Errorf("\"lo\" carries no forwarded traffic; local processes are tenants by cgroups or uids")
	case base == "" || len(base) > 15:
		return fmt.Errorf("%q must be 1-15 bytes, optionally followed by '*'", p)
	case base == "." || base == "..":
		return fmt.Errorf("%q is not an interface name", p)
	case strings.ContainsFunc(base, func(r rune) bool {
		return r == '/' || r == ':' || r == '*' || r == '"' || r == '\\' || r <= ' ' || r >= 0x7f
	}):
		return fmt.Errorf("%q: an interface name has no '/', ':', '*' (except at the end), quotes, spaces or control characters", p)
	}
	return nil
}

// InterfacePatternsOverlap reports whether some interface name matches both
// patterns.
func InterfacePatternsOverlap(a, b string) bool {
	pa, wa := strings.CutSuffix(a, "*")
	pb, wb := strings.CutSuffix(b, "*")
	switch {
	case wa && wb:
		return strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)
	case wa:
		return strings.HasPrefix(b, pa)
	case wb:
		return strings.HasPrefix(a, pb)
	}
	return a == b
}

package policy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// nat64Set is the operator's own NAT64 prefixes (policy.nat64_prefixes),
// each a /96 whose last 32 bits carry the IPv4 address (RFC 6052 section
// 2.2). A map keyed by the 96 prefix bits makes the membership test one
// lookup whatever the number of prefixes.
type nat64Set struct {
	m        map[nat64Key]netip.Prefix
	prefixes []netip.Prefix
}

type nat64Key struct {
	hi  uint64
	mid uint32
}

func nat64KeyOf(a netip.Addr) nat64Key {
	b := a.As16()
	return nat64Key{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint32(b[8:12])}
}

// SetNAT64Prefixes replaces the operator's NAT64 prefixes: an address in
// one is judged by the IPv4 address in its last 32 bits, as an address in
// the well-known prefix 64:ff9b::/96 is. Without this an internal host
// behind the site's own NAT64 looks like any global IPv6 address. A prefix
// inside a form decoded already (IPv4-mapped or -compatible, the
// well-known prefix, 6to4) changes nothing; config validation refuses it.
func (c *Classifier) SetNAT64Prefixes(prefixes []netip.Prefix) error {
	s := &nat64Set{m: make(map[nat64Key]netip.Prefix, len(prefixes))}
	for _, p := range prefixes {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 96 {
			return fmt.Errorf("setting nat64_prefixes: %v is not an IPv6 /96", p)
		}
		p = p.Masked()
		s.m[nat64KeyOf(p.Addr())] = p
		s.prefixes = append(s.prefixes, p)
	}
	c.nat64.Store(s)
	return nil
}

// lookup returns the operator prefix holding a, if any.
func (s *nat64Set) lookup(a netip.Addr) (netip.Prefix, bool) {
	if s == nil || len(s.m) == 0 || !a.Is6() {
		return netip.Prefix{}, false
	}
	p, ok := s.m[nat64KeyOf(a)]
	return p, ok
}

package policy

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// hostSet is the host's own addresses and address ranges (the kernel's
// local routes, AnyIP setups) as sorted, disjoint, merged intervals per
// family, so a lookup is a binary search: O(log n) however many addresses
// and ranges the host has, and no allocation.
type hostSet struct {
	v4 []span4
	v6 []span6
}

type span4 struct{ lo, hi uint32 }

type span6 struct{ lo, hi bits128 }

func (a bits128) less(b bits128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

// next is a+1, with ok=false on overflow.
func (a bits128) next() (bits128, bool) {
	if a.lo != ^uint64(0) {
		return bits128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return bits128{a.hi + 1, 0}, true
	}
	return a, false
}

// newHostSet builds the set from prefixes; invalid ones are skipped, zones
// dropped and IPv4-mapped prefixes taken as the IPv4 prefixes they map.
func newHostSet(prefixes []netip.Prefix) *hostSet {
	h := &hostSet{}
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		a := p.Addr().WithZone("")
		bits := p.Bits()
		if a.Is4In6() {
			a, bits = a.Unmap(), max(bits-96, 0)
		}
		p = netip.PrefixFrom(a, bits).Masked()
		if a.Is4() {
			lo := binary.BigEndian.Uint32(p.Addr().AsSlice())
			h.v4 = append(h.v4, span4{lo, lo | ^uint32(0)>>bits})
			continue
		}
		mp := newMaskedPrefix(p, 0)
		h.v6 = append(h.v6, span6{mp.net, bits128{mp.net.hi | ^mp.mask.hi, mp.net.lo | ^mp.mask.lo}})
	}
	h.v4 = mergeSpans(h.v4, func(a, b span4) int { return cmp.Compare(a.lo, b.lo) },
		func(last *span4, s span4) bool {
			if last.hi == ^uint32(0) || s.lo > last.hi+1 {
				return false
			}
			last.hi = max(last.hi, s.hi)
			return true
		})
	h.v6 = mergeSpans(h.v6, func(a, b span6) int {
		if a.lo.less(b.lo) {
			return -1
		}
		if b.lo.less(a.lo) {
			return 1
		}
		return 0
	}, func(last *span6, s span6) bool {
		if n, ok := last.hi.next(); ok && n.less(s.lo) {
			return false
		}
		if last.hi.less(s.hi) {
			last.hi = s.hi
		}
		return true
	})
	return h
}

// mergeSpans sorts spans and folds each into the previous one when join
// says they overlap or touch.
func mergeSpans[S any](spans []S, order func(a, b S) int, join func(last *S, s S) bool) []S {
	slices.SortFunc(spans, order)
	out := spans[:0]
	for _, s := range spans {
		if len(out) > 0 && join(&out[len(out)-1], s) {
			continue
		}
		out = append(out, s)
	}
	return slices.Clip(out)
}

// has reports whether a is one of the host's addresses or in one of its
// ranges. IPv4-mapped addresses are IPv6 here: the caller checks the IPv4
// address they embed separately.
func (h *hostSet) has(a netip.Addr) bool {
	if a.Is4() {
		if len(h.v4) == 0 {
			return false
		}
		x := binary.BigEndian.Uint32(a.AsSlice())
		i, n := 0, len(h.v4) // first span whose lo is above x, by binary search
		for i < n {
			m := int(uint(i+n) >> 1)
			if h.v4[m].lo <= x {
				i = m + 1
			} else {
				n = m
			}
		}
		return i > 0 && x <= h.v4[i-1].hi
	}
	if len(h.v6) == 0 {
		return false
	}
	x := toBits(a)
	i, n := 0, len(h.v6)
	for i < n {
		m := int(uint(i+n) >> 1)
		if !x.less(h.v6[m].lo) {
			i = m + 1
		} else {
			n = m
		}
	}
	return i > 0 && !h.v6[i-1].hi.less(x)
}

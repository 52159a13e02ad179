package policy

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// bits128 is an address as two big-endian halves; IPv4 addresses use their
// IPv4-mapped form so one comparison works for both families.
type bits128 struct{ hi, lo uint64 }

func toBits(a netip.Addr) bits128 {
	b := a.As16()
	return bits128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// maskedPrefix is a prefix pre-split into masked halves so that a membership
// test is two ANDs and two compares, with no netip calls on the hot path.
type maskedPrefix struct {
	net, mask bits128
	bits      int // length in the 128-bit space (IPv4 length + 96)
	val       int // index into the owner's value slice
}

func newMaskedPrefix(p netip.Prefix, val int) maskedPrefix {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	var m bits128
	switch {
	case bits == 0:
	case bits <= 64:
		m.hi = ^uint64(0) << (64 - bits)
	default:
		m.hi = ^uint64(0)
		m.lo = ^uint64(0) << (128 - bits)
	}
	n := toBits(p.Addr())
	return maskedPrefix{net: bits128{n.hi & m.hi, n.lo & m.lo}, mask: m, bits: bits, val: val}
}

func (m *maskedPrefix) contains(a bits128) bool {
	return a.hi&m.mask.hi == m.net.hi && a.lo&m.mask.lo == m.net.lo
}

// prefixTable answers longest-prefix-match queries by a linear scan over
// prefixes sorted longest first, bucketed per family by the address's first
// byte so that most lookups scan a handful of entries (ordinary public
// addresses usually none). The tables here hold tens of entries, where this
// beats a trie (see BenchmarkClassify).
type prefixTable struct {
	v4, v6   []maskedPrefix
	by4, by6 [256][]maskedPrefix
}

// add appends p with value val; call sort once all are added.
func (t *prefixTable) add(p netip.Prefix, val int) {
	mp := newMaskedPrefix(p, val)
	if p.Addr().Is4() {
		t.v4 = append(t.v4, mp)
	} else {
		t.v6 = append(t.v6, mp)
	}
}

// sort orders each family longest prefix first; among equal lengths the
// lower value comes first, which lets callers encode a tie-break in val.
func (t *prefixTable) sort() {
	cmp := func(a, b maskedPrefix) int {
		if a.bits != b.bits {
			return b.bits - a.bits
		}
		return a.val - b.val
	}
	slices.SortStableFunc(t.v4, cmp)
	slices.SortStableFunc(t.v6, cmp)
	t.by4, t.by6 = [256][]maskedPrefix{}, [256][]maskedPrefix{}
	bucket(&t.by4, t.v4, 96)
	bucket(&t.by6, t.v6, 0)
}

// bucket files each prefix under every first byte (of the family's own
// address) it can match, keeping the longest-first order.
func bucket(by *[256][]maskedPrefix, list []maskedPrefix, off int) {
	for _, mp := range list {
		fbits := min(mp.bits-off, 8) // bits of the first byte fixed by the prefix
		first := byte(mp.net.hi >> 56)
		if off == 96 {
			first = byte(mp.net.lo >> 24)
		}
		n := 1 << (8 - fbits)
		for i := range n {
			b := int(first) + i
			by[b] = append(by[b], mp)
		}
	}
}

// lookup returns the value of the longest prefix containing a, or -1.
// IPv4-mapped IPv6 addresses are looked up in the IPv6 list: callers unmap
// first when they mean the IPv4 address.
func (t *prefixTable) lookup(a netip.Addr) int {
	b := toBits(a)
	var list []maskedPrefix
	if a.Is4() {
		list = t.by4[byte(b.lo>>24)]
	} else {
		list = t.by6[byte(b.hi>>56)]
	}
	for i := range list {
		if list[i].contains(b) {
			return list[i].val
		}
	}
	return -1
}

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
// prefixes sorted longest first, one slice per family. The tables here hold
// tens of entries, where a scan of precomputed masks beats a trie (see
// BenchmarkClassify).
type prefixTable struct {
	v4, v6 []maskedPrefix
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
}

// lookup returns the value of the longest prefix containing a, or -1.
// IPv4-mapped IPv6 addresses are looked up in the IPv6 list: callers unmap
// first when they mean the IPv4 address.
func (t *prefixTable) lookup(a netip.Addr) int {
	list := t.v6
	if a.Is4() {
		list = t.v4
	}
	b := toBits(a)
	for i := range list {
		if list[i].contains(b) {
			return list[i].val
		}
	}
	return -1
}

package policy

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Source says what decided a classification.
type Source uint8

// Sources of a classification, from the strongest.
const (
	SourceInvalid      Source = iota // the zero netip.Addr
	SourceZone                       // the address carries an IPv6 zone
	SourceHost                       // an address of this host
	SourceInternalCIDR               // an internal_cidrs override
	SourcePublicCIDR                 // a public_cidrs override
	SourceRegistry                   // a special-purpose table entry
	SourceUnicast                    // no entry matched: ordinary unicast space
)

// Class is the result of classifying one address. It is small and built
// without allocating; Reason formats it for humans only when asked.
type Class struct {
	Addr     netip.Addr
	Internal bool
	Source   Source
	Entry    *Entry       // set when Source is SourceRegistry
	Override netip.Prefix // set when Source is an override
	// Embedded is the IPv4 address carried inside Addr (IPv4-mapped,
	// IPv4-compatible, NAT64, 6to4), if any.
	Embedded netip.Addr
	// ViaEmbedded is true when Embedded, not Addr itself, decided the
	// result; Source, Entry and Override then describe Embedded.
	ViaEmbedded bool
	// NAT64 is the nat64_prefixes entry Addr is in, when Embedded came
	// from one of the operator's own NAT64 prefixes.
	NAT64 netip.Prefix
}

// Reason says why the address is internal or public, e.g.
// "10.20.0.10 is private-use (RFC 1918)".
func (c Class) Reason() string {
	return c.Addr.String() + " " + c.Describe()
}

// Describe is Reason without the leading address, e.g. "is private-use (RFC
// 1918)" or "embeds 10.0.0.5, private-use (RFC 1918)".
func (c Class) Describe() string {
	what := c.what()
	via := ""
	if c.NAT64.IsValid() {
		via = " (nat64_prefixes " + c.NAT64.String() + ")"
	}
	if c.ViaEmbedded {
		return "embeds " + c.Embedded.String() + via + ", " + what
	}
	s := "is " + what
	if c.Embedded.IsValid() {
		s += ", embedding " + c.Embedded.String() + via
	}
	return s
}

func (c Class) what() string {
	switch c.Source {
	case SourceInvalid:
		return "not a valid address"
	case SourceZone:
		return "a scoped address (has a zone)"
	case SourceHost:
		return "an address of this host"
	case SourceInternalCIDR:
		return "in internal_cidrs " + c.Override.String()
	case SourcePublicCIDR:
		return "in public_cidrs " + c.Override.String()
	case SourceRegistry:
		s := c.Entry.Name + " (" + c.Entry.RFC + ")"
		if !c.Internal {
			s += ", globally reachable"
		}
		return s
	case SourceUnicast:
		return "public"
	}
	return fmt.Sprintf("classified by unknown source %d", c.Source)
}

// Classifier classifies addresses against the special-purpose registry, the
// operator's overrides and the host's own addresses. It is safe for
// concurrent use; SetOverrides, SetHostRanges and SetNAT64Prefixes swap
// immutable snapshots.
type Classifier struct {
	over  atomic.Pointer[overrides]
	hosts atomic.Pointer[hostSet]
	nat64 atomic.Pointer[nat64Set]
}

type overrides struct {
	table    prefixTable
	prefixes []netip.Prefix
	internal []bool
}

// NewClassifier returns a classifier with the given overrides and no host
// addresses (see SetHostAddrs).
func NewClassifier(internalCIDRs, publicCIDRs []netip.Prefix) (*Classifier, error) {
	c := &Classifier{}
	if err := c.SetOverrides(internalCIDRs, publicCIDRs); err != nil {
		return nil, err
	}
	c.hosts.Store(&hostSet{})
	return c, nil
}

// SetOverrides replaces the operator's overrides: internal_cidrs are
// globally routable blocks to treat as internal, public_cidrs are
// special-purpose blocks to treat as public. The longest matching override
// wins, internal on a tie, and any override beats the registry.
func (c *Classifier) SetOverrides(internalCIDRs, publicCIDRs []netip.Prefix) error {
	o := &overrides{}
	for i, list := range [][]netip.Prefix{internalCIDRs, publicCIDRs} {
		name := [...]string{"internal_cidrs", "public_cidrs"}[i]
		for _, p := range list {
			if !p.IsValid() {
				return fmt.Errorf("setting overrides: invalid prefix %v in %s", p, name)
			}
			o.prefixes = append(o.prefixes, p.Masked())
			o.internal = append(o.internal, i == 0)
		}
	}
	// Values are indices; internal ones come first, so on equal length
	// (the same block listed twice) the sort puts internal first.
	for i, p := range o.prefixes {
		o.table.add(p, i)
	}
	o.table.sort()
	c.over.Store(o)
	return nil
}

// SetHostAddrs replaces the set of this host's own addresses, which are
// internal whatever the overrides. Zones are dropped and IPv4-mapped
// addresses unmapped. It is SetHostRanges with single-address prefixes.
func (c *Classifier) SetHostAddrs(addrs []netip.Addr) {
	ps := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	c.SetHostRanges(ps)
}

// SetHostRanges replaces the host's own addresses and address ranges (its
// interface addresses and the kernel's local routes, such as an AnyIP
// "local 10.99.0.0/16 dev lo"): every address in them is internal whatever
// the overrides. Zones are dropped and IPv4-mapped prefixes unmapped. A
// lookup costs O(log n) in the number of disjoint ranges.
func (c *Classifier) SetHostRanges(prefixes []netip.Prefix) {
	c.hosts.Store(newHostSet(prefixes))
}

// embedKind is how an IPv6 address carries an IPv4 address.
type embedKind uint8

const (
	embedNone embedKind = iota
	embedMapped
	embedCompat
	embedNAT64
	embedNAT64Local
	emb6to4
	embedNAT64Site // in one of the operator's nat64_prefixes
)

// embeddedV4 extracts the IPv4 address inside a, if any. For the NAT64
// local-use prefix the address is taken from the last 32 bits, the RFC 6052
// layout of the /96 prefixes carved from it in practice.
func embeddedV4(a netip.Addr) (embedKind, netip.Addr) {
	if a.Is4In6() {
		return embedMapped, a.Unmap()
	}
	if !a.Is6() {
		return embedNone, netip.Addr{}
	}
	b := a.As16()
	last := netip.AddrFrom4([4]byte(b[12:16]))
	hi := uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
	zero6to11 := b[6]|b[7]|b[8]|b[9]|b[10]|b[11] == 0
	switch {
	case hi == 0 && zero6to11:
		if b[12]|b[13]|b[14] == 0 && b[15] <= 1 {
			return embedNone, netip.Addr{} // :: and ::1
		}
		return embedCompat, last
	case hi == 0x0064ff9b0000 && zero6to11:
		return embedNAT64, last
	case hi == 0x0064ff9b0001:
		return embedNAT64Local, last
	case b[0] == 0x20 && b[1] == 0x02:
		return emb6to4, netip.AddrFrom4([4]byte(b[2:6]))
	}
	return embedNone, netip.Addr{}
}

// Classify says whether a is internal and why. Internal wins everywhere: an
// address is internal if it or the IPv4 address it embeds is a host
// address, is in internal_cidrs, or (without an override) is non-global in
// the registry. IPv4-mapped, NAT64 (the well-known prefix and the
// operator's nat64_prefixes) and 6to4 addresses are as public as the
// address they embed; a public_cidrs entry for the outer address lifts only
// the outer address's own registry status.
func (c *Classifier) Classify(a netip.Addr) Class {
	if !a.IsValid() {
		return Class{Addr: a, Internal: true, Source: SourceInvalid}
	}
	if a.Zone() != "" {
		return Class{Addr: a, Internal: true, Source: SourceZone}
	}
	kind, e := embeddedV4(a)
	out := Class{Addr: a, Embedded: e}
	if kind == embedNone || kind == embedNAT64Local {
		if p, ok := c.nat64.Load().lookup(a); ok {
			b := a.As16()
			kind, e = embedNAT64Site, netip.AddrFrom4([4]byte(b[12:16]))
			out.Embedded, out.NAT64 = e, p
		}
	}
	hosts := c.hosts.Load()
	if hosts.has(a) {
		out.Internal, out.Source = true, SourceHost
		return out
	}
	if kind != embedNone && hosts.has(e) {
		out.Internal, out.Source, out.ViaEmbedded = true, SourceHost, true
		return out
	}
	over := c.over.Load()
	oi := over.table.lookup(a)
	if oi >= 0 && over.internal[oi] {
		out.Internal, out.Source, out.Override = true, SourceInternalCIDR, over.prefixes[oi]
		return out
	}
	if kind != embedNone {
		ec := classifyNoHost(over, e)
		if ec.Internal || kind == embedMapped || kind == embedNAT64 || kind == emb6to4 || kind == embedNAT64Site {
			if ec.Internal || oi < 0 {
				out.Internal, out.Source, out.Entry, out.Override = ec.Internal, ec.Source, ec.Entry, ec.Override
				out.ViaEmbedded = true
				return out
			}
		}
	}
	if oi >= 0 {
		out.Source, out.Override = SourcePublicCIDR, over.prefixes[oi]
		return out
	}
	return registryClass(out, a)
}

// classifyNoHost classifies an address without embedded forms by override
// then registry; the caller has checked host addresses.
func classifyNoHost(over *overrides, a netip.Addr) Class {
	out := Class{Addr: a}
	if oi := over.table.lookup(a); oi >= 0 {
		out.Internal = over.internal[oi]
		out.Source = SourcePublicCIDR
		if out.Internal {
			out.Source = SourceInternalCIDR
		}
		out.Override = over.prefixes[oi]
		return out
	}
	return registryClass(out, a)
}

func registryClass(out Class, a netip.Addr) Class {
	i := registryTable.lookup(a)
	if i < 0 {
		out.Source = SourceUnicast
		return out
	}
	out.Source, out.Entry, out.Internal = SourceRegistry, &registry[i], !registry[i].Global
	return out
}

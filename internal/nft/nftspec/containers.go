package nftspec

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"slices"
)

// Container is one identified container on one bridge port: a container
// attached to two networks is two Containers.
type Container struct {
	Port  int              // ifindex of the host side of the container's veth (the bridge port)
	MAC   net.HardwareAddr // the MAC address its runtime gave the endpoint
	Addrs []netip.Addr     // the addresses its runtime gave the endpoint (IPv4, IPv6 global)
	// Slot is the tenant slot of a labelled container (a Labelled
	// tenant's), 0 for a container identified without a label. A slot
	// no labelled tenant of the applied spec holds counts as 0.
	Slot uint32
}

// validateContainers checks the container identity settings.
func (s *Spec) validateContainers() error {
	labelled := slices.ContainsFunc(s.Tenants, func(t Tenant) bool { return t.Labelled })
	if !s.Containers && !labelled {
		return nil
	}
	cm, ct := s.ContainerMarkMask, s.ContainerCtMask
	switch {
	case !contiguous(cm) || !contiguous(ct):
		return fmt.Errorf("container mark mask %#x and ct mask %#x must be nonzero and contiguous", cm, ct)
	case bits.OnesCount32(cm) != bits.OnesCount32(ct):
		return fmt.Errorf("container mark mask %#x and ct mask %#x must be of the same width", cm, ct)
	case cm&s.MarkMask != 0:
		return fmt.Errorf("container mark mask %#x overlaps mark mask %#x", cm, s.MarkMask)
	case ct&s.CtMarkMask != 0:
		return fmt.Errorf("container ct mask %#x overlaps ct mark mask %#x", ct, s.CtMarkMask)
	case labelled && !s.Containers:
		return errors.New("a labelled tenant needs container identity (Containers)")
	}
	for _, t := range s.Tenants {
		if t.Labelled && t.Slot > cm>>bits.TrailingZeros32(cm) {
			return fmt.Errorf("tenant %q: slot %d does not fit container mark mask %#x", t.Name, t.Slot, cm)
		}
	}
	return nil
}

// contiguous reports whether m is one nonzero run of bits.
func contiguous(m uint32) bool {
	if m == 0 {
		return false
	}
	low := m >> bits.TrailingZeros32(m)
	return low&(low+1) == 0
}

// Identity is the packet-mark value (within ContainerMarkMask) of a
// labelled tenant's containers.
func (s *Spec) Identity(slot uint32) uint32 {
	return slot << bits.TrailingZeros32(s.ContainerMarkMask)
}

// CtIdentity is Identity's value in the conntrack mark (within
// ContainerCtMask) of the flows the tenant's containers open.
func (s *Spec) CtIdentity(slot uint32) uint32 {
	return slot << bits.TrailingZeros32(s.ContainerCtMask)
}

// LabelledSlots returns the slots of the spec's labelled tenants.
func (s *Spec) LabelledSlots() map[uint32]bool {
	out := map[uint32]bool{}
	for _, t := range s.Tenants {
		if t.Labelled {
			out[t.Slot] = true
		}
	}
	return out
}

// NormalContainers checks cs and returns a sorted copy. An address that
// two ports claim is kept only in the owned sets (package rules, bridgeElems): it is
// usable from neither port until one of them lets it go.
func NormalContainers(cs []Container) ([]Container, error) {
	out := make([]Container, 0, len(cs))
	ports := map[int]bool{}
	for _, c := range cs {
		switch {
		case c.Port <= 0:
			return nil, fmt.Errorf("container port %d: want an ifindex", c.Port)
		case ports[c.Port]:
			return nil, fmt.Errorf("container port %d given twice", c.Port)
		case len(c.MAC) != 6:
			return nil, fmt.Errorf("container on port %d: MAC %v is not an Ethernet address", c.Port, c.MAC)
		}
		ports[c.Port] = true
		n := Container{Port: c.Port, MAC: slices.Clone(c.MAC), Slot: c.Slot}
		for _, a := range c.Addrs {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsMulticast() {
				return nil, fmt.Errorf("container on port %d: address %v is not a unicast address a port can own", c.Port, a)
			}
			if !slices.Contains(n.Addrs, a) {
				n.Addrs = append(n.Addrs, a)
			}
		}
		slices.SortFunc(n.Addrs, netip.Addr.Compare)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Container) int { return cmp.Compare(a.Port, b.Port) })
	return out, nil
}

// HasLabelled reports whether any tenant is labelled.
func (s *Spec) HasLabelled() bool { return len(s.LabelledSlots()) > 0 }

package nft

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Container identity. A container's packets reach the host on its bridge
// port (the host side of its veth), and only the bridge family sees that
// port: in the inet hooks the input interface is the bridge, with or
// without br_netfilter. A source address alone is no identity (Docker
// keeps CAP_NET_RAW, a container with NET_ADMIN can add any address and
// answer ARP for a neighbour's), so a table of family bridge, named like
// the inet table (bridge.go), binds each identified container to its port:
// a frame from the port must carry the container's MAC and, for IPv4, ARP
// and IPv6, one of its addresses (or be link-local neighbour discovery),
// and no other port may use an identified address. A labelled container's
// frames then get its tenant's slot in the packet mark (ContainerMarkMask),
// which survives into the inet hooks, where it classifies the packet
// before any interface tenant (labelled.go).
//
// Identity is keyed on the port's ifindex: the kernel hands out ifindexes
// in increasing order and a removed container's veth is deleted with it,
// so a stale element names a port that no longer exists, and the address
// it held stays owned, usable from no port, until SetContainers drops it:
// a stale identity fails closed. A flow keeps the identity of the
// container that opened it (ContainerCtMask); a packet whose identity
// differs from its flow's is dropped, so a new container given a removed
// one's address cannot ride the old flow's conntrack entry.

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

// identity is the packet-mark value (within ContainerMarkMask) of a
// labelled tenant's containers, and ctIdentity its value in the ct mark.
func (s *Spec) identity(slot uint32) uint32 {
	return slot << bits.TrailingZeros32(s.ContainerMarkMask)
}

func (s *Spec) ctIdentity(slot uint32) uint32 {
	return slot << bits.TrailingZeros32(s.ContainerCtMask)
}

// labelledSlots returns the slots of the spec's labelled tenants.
func (s *Spec) labelledSlots() map[uint32]bool {
	out := map[uint32]bool{}
	for _, t := range s.Tenants {
		if t.Labelled {
			out[t.Slot] = true
		}
	}
	return out
}

// normalContainers checks cs and returns a sorted copy. An address that
// two ports claim is kept only in the owned sets (bridgeElems): it is
// usable from neither port until one of them lets it go.
func normalContainers(cs []Container) ([]Container, error) {
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

// Element key encodings of the bridge table's sets (concatenations pad
// each part to 4 bytes).
func portKey(port int) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(port)) }

func portAddrKey(port int, a netip.Addr) []byte { return append(portKey(port), a.AsSlice()...) }

func portMACKey(port int, mac net.HardwareAddr) []byte {
	return append(append(portKey(port), mac...), 0, 0)
}

// claimsOf counts the ports that claim each address.
func claimsOf(cs []Container) map[netip.Addr]int {
	claims := make(map[netip.Addr]int, 2*len(cs))
	for _, c := range cs {
		for _, a := range c.Addrs {
			claims[a]++
		}
	}
	return claims
}

// bindingElems adds to out the elements of every set but the owned ones that
// container c contributes, given the claims on each address.
func bindingElems(out map[string][]nftables.SetElement, c *Container, claims map[netip.Addr]int, labelled map[uint32]bool) {
	out[setPorts] = append(out[setPorts], nftables.SetElement{Key: portKey(c.Port)})
	out[setPortMAC] = append(out[setPortMAC], nftables.SetElement{Key: portMACKey(c.Port, c.MAC)})
	for _, a := range c.Addrs {
		if claims[a] > 1 {
			continue // usable from neither port
		}
		fam, id := setPort4, mapID4
		if a.Is6() {
			fam, id = setPort6, mapID6
		}
		out[fam] = append(out[fam], nftables.SetElement{Key: portAddrKey(c.Port, a)})
		if labelled[c.Slot] {
			out[id] = append(out[id], nftables.SetElement{Key: portAddrKey(c.Port, a),
				VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: labelChainName(c.Slot)}})
		}
	}
}

// ownedElem is an address's element of the owned sets.
func ownedElem(a netip.Addr) (string, nftables.SetElement) {
	if a.Is6() {
		return setOwned6, nftables.SetElement{Key: a.AsSlice()}
	}
	return setOwned4, nftables.SetElement{Key: a.AsSlice()}
}

// bridgeElems returns the elements of each of the bridge table's sets for
// containers cs (normalised) under spec. They have no texts: Render prints
// the table before any container is bound.
func bridgeElems(spec *Spec, cs []Container) map[string][]element {
	claims, labelled := claimsOf(cs), spec.labelledSlots()
	raw := map[string][]nftables.SetElement{}
	for i := range cs {
		bindingElems(raw, &cs[i], claims, labelled)
	}
	for a := range claims {
		set, e := ownedElem(a)
		raw[set] = append(raw[set], e)
	}
	out := map[string][]element{}
	for set, es := range raw {
		for _, e := range es {
			out[set] = append(out[set], element{elem: e})
		}
	}
	return out
}

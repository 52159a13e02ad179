package rules

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

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

// Element key encodings of the bridge table's sets (concatenations pad
// each part to 4 bytes).
func portKey(port int) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(port)) }

func portAddrKey(port int, a netip.Addr) []byte { return append(portKey(port), a.AsSlice()...) }

func portMACKey(port int, mac net.HardwareAddr) []byte {
	return append(append(portKey(port), mac...), 0, 0)
}

// ClaimsOf counts the ports that claim each address.
func ClaimsOf(cs []nftspec.Container) map[netip.Addr]int {
	claims := make(map[netip.Addr]int, 2*len(cs))
	for _, c := range cs {
		for _, a := range c.Addrs {
			claims[a]++
		}
	}
	return claims
}

// BindingElems adds to out the elements of every set but the owned ones that
// container c contributes, given the claims on each address.
func BindingElems(out map[string][]nftables.SetElement, c *nftspec.Container, claims map[netip.Addr]int, labelled map[uint32]bool) {
	out[SetPorts] = append(out[SetPorts], nftables.SetElement{Key: portKey(c.Port)})
	out[SetPortMAC] = append(out[SetPortMAC], nftables.SetElement{Key: portMACKey(c.Port, c.MAC)})
	for _, a := range c.Addrs {
		if claims[a] > 1 {
			continue // usable from neither port
		}
		fam, id := SetPort4, MapID4
		if a.Is6() {
			fam, id = SetPort6, MapID6
		}
		out[fam] = append(out[fam], nftables.SetElement{Key: portAddrKey(c.Port, a)})
		if labelled[c.Slot] {
			out[id] = append(out[id], nftables.SetElement{Key: portAddrKey(c.Port, a),
				VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: labelChainName(c.Slot)}})
		}
	}
}

// OwnedElem is an address's element of the owned sets.
func OwnedElem(a netip.Addr) (string, nftables.SetElement) {
	if a.Is6() {
		return SetOwned6, nftables.SetElement{Key: a.AsSlice()}
	}
	return SetOwned4, nftables.SetElement{Key: a.AsSlice()}
}

// bridgeElems returns the elements of each of the bridge table's sets for
// containers cs (normalised) under spec. They have no texts: Render prints
// the table before any container is bound.
func bridgeElems(spec *nftspec.Spec, cs []nftspec.Container) map[string][]Element {
	claims, labelled := ClaimsOf(cs), spec.LabelledSlots()
	raw := map[string][]nftables.SetElement{}
	for i := range cs {
		BindingElems(raw, &cs[i], claims, labelled)
	}
	for a := range claims {
		set, e := OwnedElem(a)
		raw[set] = append(raw[set], e)
	}
	out := map[string][]Element{}
	for set, es := range raw {
		for _, e := range es {
			out[set] = append(out[set], Element{Elem: e})
		}
	}
	return out
}

package rules

import (
	"fmt"
	"net/netip"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The bridge table (family bridge, named like the inet table) guards every
// bridge port. Its hook is bridge prerouting at priority -300, the first
// thing a frame meets when it enters a bridge from a port, before the
// bridge learns its source MAC and before br_netfilter hands IP packets to
// the inet hooks. Frames the host itself sends into a bridge never pass it.
//
//	chain prerouting:
//	  clear ContainerMarkMask (no frame brings an identity in)
//	  iif @ports goto port_guard              identified containers' ports
//	  (any other port: a VM, a container not identified yet, a NIC)
//	  ARP, IPv4, IPv6 from an owned address, NA for an owned target: drop
//	chain port_guard:
//	  other ethertypes (also VLAN tags): drop
//	  source MAC, ARP sender MAC not the port's: drop
//	  ARP sender address (unless 0.0.0.0, a probe) not the port's: drop
//	  router advertisements and redirects: drop (a container is no router)
//	  NA for a target that is not link-local and not the port's: drop
//	  IPv4 source not the port's: drop
//	  IPv6 from :: or link-local: return (DAD, neighbour discovery; such
//	    packets carry no identity, so they are the interface tenant's)
//	  IPv6 source not the port's: drop
//	  (port . source) vmap @labelled_ip / @labelled_ip6: goto label_SLOT
//	chain label_SLOT (one per labelled tenant):
//	  the tenant's slot into ContainerMarkMask, the other mark bits kept
//
// A drop here is final whatever other tables accept. The frame's MAC and
// addresses are checked together with its port, so a container can neither
// send as another (spoofed source, any protocol, either family) nor make
// the host or its neighbours believe that another container's address
// lives behind it (ARP replies, neighbour advertisements), nor move another
// container's MAC to its own port in the bridge's forwarding table.
const (
	SetPorts    = "ports"
	SetPort4    = "port_ip"
	SetPort6    = "port_ip6"
	SetPortMAC  = "port_mac"
	SetOwned4   = "owned_ip"
	SetOwned6   = "owned_ip6"
	MapID4      = "labelled_ip"
	MapID6      = "labelled_ip6"
	ChainGuard  = "port_guard"
	reg9        = 9 // NFT_REG32_01: the second part of a concatenation
	etherIP     = 0x0800
	etherARP    = 0x0806
	etherIP6    = 0x86dd
	bridgeFirst = -300
)

// BridgeSetNames are the bridge table's sets, in listing order.
var BridgeSetNames = []string{SetPorts, SetPort4, SetPort6, SetPortMAC, SetOwned4, SetOwned6, MapID4, MapID6}

// BuildBridge returns the bridge table of spec binding containers cs.
func BuildBridge(spec *nftspec.Spec, cs []nftspec.Container) *Ruleset {
	table := &nftables.Table{Name: spec.Table, Family: nftables.TableFamilyBridge}
	rs := &Ruleset{Family: nftables.TableFamilyBridge}
	ifIdx, ip4, ip6 := nftables.TypeIFIndex, nftables.TypeIPAddr, nftables.TypeIP6Addr
	keys := map[string][]nftables.SetDatatype{
		SetPorts: {ifIdx}, SetPort4: {ifIdx, ip4}, SetPort6: {ifIdx, ip6}, SetPortMAC: {ifIdx, nftables.TypeEtherAddr},
		SetOwned4: {ip4}, SetOwned6: {ip6}, MapID4: {ifIdx, ip4}, MapID6: {ifIdx, ip6},
	}
	elems := bridgeElems(spec, cs)
	for _, name := range BridgeSetNames {
		s := &nftables.Set{Table: table, Name: name, KeyType: keys[name][0]}
		if len(keys[name]) > 1 {
			s.KeyType, s.Concatenation = nftables.MustConcatSetType(keys[name]...), true
		}
		if keys[name][0] == ifIdx {
			s.KeyByteOrder = binaryutil.NativeEndian
		}
		if name == MapID4 || name == MapID6 {
			s.IsMap, s.DataType = true, nftables.TypeVerdict
		}
		rs.Sets = append(rs.Sets, newSet(s, elems[name]))
	}
	prio := nftables.ChainPriorityRef(bridgeFirst)
	pre := baseChain(table, ChainPrerouting, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, prio,
		"type filter hook prerouting priority dstnat;")
	pre.Rules = append(pre.Rules,
		(&RuleDef{}).add(fmt.Sprintf("meta mark set meta mark & 0x%08x", ^spec.ContainerMarkMask),
			setBits(false, spec.ContainerMarkMask, 0)...),
		(&RuleDef{}).add("iif @"+SetPorts, iif(reg1), lookup(SetPorts, 0)).
			add("goto "+ChainGuard, &expr.Verdict{Kind: expr.VerdictGoto, Chain: ChainGuard}),
		arpOf().add("arp saddr ip @"+SetOwned4, nh(14, 4, reg1), lookup(SetOwned4, 0)).add("drop", drop()),
		ipOf(false).add("ip saddr @"+SetOwned4, nh(12, 4, reg1), lookup(SetOwned4, 0)).add("drop", drop()),
		ipOf(true).add("ip6 saddr @"+SetOwned6, nh(8, 16, reg1), lookup(SetOwned6, 0)).add("drop", drop()),
		icmp6Type(136).add("@th,64,128 @"+SetOwned6, th(8, 16, reg1), lookup(SetOwned6, 0)).add("drop", drop()))
	rs.Chains = append(rs.Chains, pre, portGuard(table))
	for _, t := range sortedTenants(spec) {
		if t.Labelled {
			c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: labelChainName(t.Slot)}}
			v := spec.Identity(t.Slot)
			c.Rules = append(c.Rules, (&RuleDef{}).add(markSetText("meta", spec.ContainerMarkMask, v),
				setBits(false, spec.ContainerMarkMask, v)...))
			rs.Chains = append(rs.Chains, c)
		}
	}
	return rs
}

func labelChainName(slot uint32) string { return fmt.Sprintf("label_%d", slot) }

// portGuard is the chain of identified containers' ports.
func portGuard(table *nftables.Table) *ChainDef {
	c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: ChainGuard}}
	types := newSet(&nftables.Set{Anonymous: true, Constant: true, KeyType: nftables.TypeEtherType}, []Element{
		{etherIP, nftables.SetElement{Key: be16(etherIP)}, "ip"},
		{etherARP, nftables.SetElement{Key: be16(etherARP)}, "arp"},
		{etherIP6, nftables.SetElement{Key: be16(etherIP6)}, "ip6"},
	})
	other := &RuleDef{Anon: types, AnonLookup: &expr.Lookup{SourceRegister: reg1, Invert: true}}
	other.add("ether type != { ip, arp, ip6 }", llType(), other.AnonLookup).add("drop", drop())
	notMine := func(r *RuleDef, key string, load expr.Any, set string) *RuleDef {
		return r.add("iif . "+key+" != @"+set, iif(reg1), load, &expr.Lookup{SourceRegister: reg1, SetName: set, Invert: true}).
			add("drop", drop())
	}
	routers := newSet(&nftables.Set{Anonymous: true, Constant: true, KeyType: nftables.TypeICMP6Type}, []Element{
		{134, nftables.SetElement{Key: []byte{134}}, "nd-router-advert"},
		{137, nftables.SetElement{Key: []byte{137}}, "nd-redirect"},
	})
	router := &RuleDef{Anon: routers, AnonLookup: &expr.Lookup{SourceRegister: reg1}}
	router.add("icmpv6 type { nd-router-advert, nd-redirect }", append(icmp6Proto(),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}, router.AnonLookup)...).
		add("drop", drop())
	na := icmp6Type(136).add("@th,64,16 & 0xffc0 != 0xfe80", th(8, 2, reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 2, Mask: []byte{0xff, 0xc0}, Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{0xfe, 0x80}})
	c.Rules = append(c.Rules, other,
		notMine(&RuleDef{}, "ether saddr", &expr.Payload{DestRegister: reg9, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6}, SetPortMAC),
		notMine(llIs(etherARP), "arp saddr ether", nh(8, 6, reg9), SetPortMAC),
		notMine(llIs(etherARP).add("arp saddr ip != 0.0.0.0", nh(14, 4, reg1), &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)}),
			"arp saddr ip", nh(14, 4, reg9), SetPort4),
		router,
		notMine(na, "@th,64,128", th(8, 16, reg9), SetPort6),
		notMine(llIs(etherIP), "ip saddr", nh(12, 4, reg9), SetPort4))
	for _, src := range []string{"::/128", "fe80::/10"} {
		p := netip.MustParsePrefix(src)
		r := ipOf(true).add("ip6 saddr "+map[bool]string{true: "::", false: src}[p.Bits() == 128], nh(8, 16, reg1))
		if p.Bits() < 128 {
			r.add("", &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 16, Mask: prefixMask(p.Bits(), 16), Xor: make([]byte, 16)})
		}
		c.Rules = append(c.Rules, r.add("return", &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: p.Addr().AsSlice()},
			&expr.Verdict{Kind: expr.VerdictReturn}))
	}
	c.Rules = append(c.Rules, notMine(llIs(etherIP6), "ip6 saddr", nh(8, 16, reg9), SetPort6))
	for _, v6 := range []bool{false, true} {
		off, n, m, text := uint32(12), uint32(4), MapID4, "iif . ip saddr vmap @"+MapID4
		if v6 {
			off, n, m, text = 8, 16, MapID6, "iif . ip6 saddr vmap @"+MapID6
		}
		c.Rules = append(c.Rules, ipOf(v6).add(text, iif(reg1), nh(off, n, reg9), vmap(m, 0)))
	}
	return c
}

func drop() *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictDrop} }

func iif(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyIIF, Register: reg} }

// nh loads n bytes of the network header at off (for ARP: the ARP header).
func nh(off, n, reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

func th(off, n, reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: n}
}

// llType loads the frame's ethertype (a VLAN tag shows as 0x8100).
func llType() expr.Any {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2}
}

// llIs starts a rule for frames of ethertype t, which nft does not print
// when the rest of the rule implies it.
func llIs(t uint16) *RuleDef {
	return (&RuleDef{}).add("", llType(), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(t)})
}

// ipOf starts a rule for IPv4 or IPv6 packets, as nft's own dependency in
// the bridge family does (meta protocol).
func ipOf(v6 bool) *RuleDef {
	t := uint16(etherIP)
	if v6 {
		t = etherIP6
	}
	return (&RuleDef{}).add("", &expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(t)})
}

// arpOf starts a rule for ARP frames.
func arpOf() *RuleDef { return llIs(etherARP) }

func icmp6Proto() []expr.Any {
	return append(ipOf(true).Exprs, l4proto(unix.IPPROTO_ICMPV6)...)
}

// icmp6Type starts a rule for ICMPv6 of type typ.
func icmp6Type(typ byte) *RuleDef {
	text := map[byte]string{136: "icmpv6 type nd-neighbor-advert"}[typ]
	return (&RuleDef{}).add(text, append(icmp6Proto(),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{typ}})...)
}

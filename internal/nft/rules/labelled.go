package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Labelled tenants in the inet table. A labelled container's packets
// arrive with its tenant's identity in the packet mark (ContainerMarkMask,
// set by the bridge table, bridge.go), which the inet hooks see on routed,
// redirected and (with br_netfilter) bridged packets alike:
//
//   - chain identity (prerouting, priority -175: after conntrack, before
//     the mangle chains, where wg-quick copies a ct mark into the packet
//     mark): a new flow from a bridge records the identity of its first
//     packet in the ct mark (ContainerCtMask, keeping the other bits: map
//     container_new jumps to the tenant's chain identity_SLOT), and a
//     packet in the original direction whose identity differs from its
//     flow's is dropped (set container_same: 0 . 0, and each labelled
//     identity with its ct value). A container given the address of a
//     removed one therefore cannot ride that one's flows, whatever the
//     later hooks accept (the input chain's pass for redirected flows
//     included). The packet mark's identity bits are then cleared: from
//     here on the flow's identity, equal to the packet's, is used, and no
//     fwmark routing rule of another program ever sees egressfw's bits;
//   - nat_prerouting, before every interface tenant: traffic that stays on
//     the bridge it came in by (to another container) is not intercepted;
//     DNS, for a tenant whose DNS is intercepted, goes to its DNS port (map
//     container_dns) and new TCP to an intercept port to its listener port
//     (map container_ports), both REDIRECTed with the transparent-socket
//     check the interface tenants' redirects have, else refused; the
//     interface tenants' rules that follow never see a labelled flow (a
//     labelled tenant whose DNS is direct keeps port 53 allow_direct's);
//   - forward and input, before every interface tenant: a verdict map
//     from the identity to the tenant's chains (forward_SLOT, input_SLOT),
//     which are built as for any forwarded tenant (allow_direct, admitted
//     flows, report mode). Its members are the containers of its bridge:
//     what leaves by the bridge it came in by is not egress.
//
// A container on a bridge that an interface tenant covers thus gets the
// labelled tenant, and an unlabelled one there keeps the interface tenant.
// Packets without an identity (link-local IPv6, which the bridge table
// passes unbound) are the interface tenant's.
const (
	chainIdentity    = "identity"
	mapContainerNew  = "container_new"
	setContainerSame = "container_same"
	mapContainerPort = "container_ports"
	mapContainerDNS  = "container_dns"
	mapContainerFwd  = "container_forward"
	mapContainerIn   = "container_input"
	identityPriority = -175
)

// containerMark loads the identity from the packet mark.
func containerMark(s *nftspec.Spec, reg uint32) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(s.ContainerMarkMask), Xor: ne32(0)}}
}

func containerMarkText(s *nftspec.Spec) string {
	return fmt.Sprintf("meta mark & 0x%08x", s.ContainerMarkMask)
}

// flowIdentity loads the identity the flow was opened with from the ct
// mark: what every hook after the identity chain classifies by.
func flowIdentity(s *nftspec.Spec, reg uint32) []expr.Any {
	return []expr.Any{&expr.Ct{Key: expr.CtKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(s.ContainerCtMask), Xor: ne32(0)}}
}

func flowIdentityText(s *nftspec.Spec) string {
	return fmt.Sprintf("ct mark & 0x%08x", s.ContainerCtMask)
}

// labelledSets returns the inet table's maps of labelled tenants.
func labelledSets(spec *nftspec.Spec, table *nftables.Table, tenants []nftspec.Tenant) []*SetDef {
	var newFlow, same, ports, dns, fwd, in []Element
	same = append(same, Element{0, nftables.SetElement{Key: make([]byte, 8)}, "0x00000000 . 0x00000000"})
	for _, t := range tenants {
		if !t.Labelled {
			continue
		}
		id, cid := spec.Identity(t.Slot), spec.CtIdentity(t.Slot)
		k := uint64(id)
		same = append(same, Element{k, nftables.SetElement{Key: append(ne32(id), ne32(cid)...)}, fmt.Sprintf("0x%08x . 0x%08x", id, cid)})
		ports = append(ports, Element{uint64(cid), nftables.SetElement{Key: ne32(cid), Val: be16(t.ListenerPort)}, fmt.Sprintf("0x%08x : %d", cid, t.ListenerPort)})
		if t.DNS == nftspec.DNSIntercept {
			dns = append(dns, Element{uint64(cid), nftables.SetElement{Key: ne32(cid), Val: be16(t.DNSPort)}, fmt.Sprintf("0x%08x : %d", cid, t.DNSPort)})
		}
		for _, v := range []struct {
			out  *[]Element
			key  uint32
			name string
			kind expr.VerdictKind
		}{{&newFlow, id, identityChainName(t.Slot), expr.VerdictJump}, {&fwd, cid, forwardChainName(t.Slot), expr.VerdictGoto},
			{&in, cid, inputChainName(t.Slot), expr.VerdictGoto}} {
			word := map[expr.VerdictKind]string{expr.VerdictJump: "jump", expr.VerdictGoto: "goto"}[v.kind]
			*v.out = append(*v.out, Element{uint64(v.key), nftables.SetElement{Key: ne32(v.key),
				VerdictData: &expr.Verdict{Kind: v.kind, Chain: v.name}}, fmt.Sprintf("0x%08x : %s %s", v.key, word, v.name)})
		}
	}
	mark := func(name string, data nftables.SetDatatype, elems []Element) *SetDef {
		return newSet(&nftables.Set{Table: table, Name: name, IsMap: true, KeyType: nftables.TypeMark,
			KeyByteOrder: binaryutil.NativeEndian, DataType: data}, elems)
	}
	return []*SetDef{
		mark(mapContainerNew, nftables.TypeVerdict, newFlow),
		newSet(&nftables.Set{Table: table, Name: setContainerSame, KeyType: nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeMark),
			Concatenation: true, KeyByteOrder: binaryutil.NativeEndian}, same),
		mark(mapContainerPort, nftables.TypeInetService, ports),
		mark(mapContainerDNS, nftables.TypeInetService, dns),
		mark(mapContainerFwd, nftables.TypeVerdict, fwd),
		mark(mapContainerIn, nftables.TypeVerdict, in),
	}
}

// identityChain records and checks each bridged flow's identity.
func identityChain(spec *nftspec.Spec, table *nftables.Table) *ChainDef {
	c := baseChain(table, chainIdentity, nftables.ChainTypeFilter, nftables.ChainHookPrerouting,
		nftables.ChainPriorityRef(identityPriority), fmt.Sprintf("type filter hook prerouting priority %d;", identityPriority))
	bridged := func() *RuleDef {
		return (&RuleDef{}).add(`meta iifkind "bridge"`, &expr.Meta{Key: metaKeyIIFKind, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ifname("bridge")})
	}
	record := bridged().add("ct state new", &expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(expr.CtStateBitNEW), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ne32(0)})
	record.add(fmt.Sprintf("%s vmap @%s", containerMarkText(spec), mapContainerNew), append(containerMark(spec, reg1), vmap(mapContainerNew, 0))...)
	check := bridged().add("ct direction original", ctDirOriginal()...)
	check.add(fmt.Sprintf("%s . ct mark & 0x%08x != @%s", containerMarkText(spec), spec.ContainerCtMask, setContainerSame),
		append(containerMark(spec, reg1), &expr.Ct{Key: expr.CtKeyMARK, Register: reg9},
			&expr.Bitwise{SourceRegister: reg9, DestRegister: reg9, Len: 4, Mask: ne32(spec.ContainerCtMask), Xor: ne32(0)},
			&expr.Lookup{SourceRegister: reg1, SetName: setContainerSame, Invert: true})...)
	clear := bridged().add(fmt.Sprintf("meta mark set meta mark & 0x%08x", ^spec.ContainerMarkMask),
		setBits(false, spec.ContainerMarkMask, 0)...)
	c.Rules = append(c.Rules, record, check.add("drop", drop()), clear)
	return c
}

func identityChainName(slot uint32) string { return fmt.Sprintf("identity_%d", slot) }

// tenantIdentityChain records a labelled tenant's identity in a new flow's
// ct mark, keeping the other bits.
func tenantIdentityChain(spec *nftspec.Spec, table *nftables.Table, t *nftspec.Tenant) *ChainDef {
	c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: identityChainName(t.Slot)}}
	v := spec.CtIdentity(t.Slot)
	c.Rules = append(c.Rules, (&RuleDef{}).add(markSetText("ct", spec.ContainerCtMask, v), setBits(true, spec.ContainerCtMask, v)...))
	return c
}

// metaKeyIIFKind is NFT_META_IIFKIND (the input device's link kind), which
// google/nftables and x/sys do not name.
const metaKeyIIFKind expr.MetaKey = 0x1a

// labelledNAT returns the rules put first in nat_prerouting.
func labelledNAT(spec *nftspec.Spec) []*RuleDef {
	labelled := func() *RuleDef {
		return (&RuleDef{}).add(fmt.Sprintf("%s == @%s", flowIdentityText(spec), mapContainerPort),
			append(flowIdentity(spec, reg1), lookup(mapContainerPort, 0))...)
	}
	staysOnBridge := labelled().add("fib daddr . iif oif exists",
		&expr.Fib{FlagDADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ne32(1)}).add("accept", accept)
	icpt := func() *RuleDef {
		return (&RuleDef{}).add("tcp dport @"+SetIntercept, append(l4proto(unix.IPPROTO_TCP), thDport(), lookup(SetIntercept, 0))...)
	}
	port := fmt.Sprintf(":%s map @%s", flowIdentityText(spec), mapContainerPort)
	redirect := icpt()
	redirect.add("tproxy to "+port, append(flowIdentity(spec, reg1),
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: mapContainerPort},
		&expr.TProxy{Family: unix.NFPROTO_UNSPEC, TableFamily: unix.NFPROTO_INET, RegPort: reg1})...)
	redirect.add("redirect to "+port, &expr.Redir{RegisterProtoMin: reg1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
	reset := labelled()
	reset.Exprs = append(reset.Exprs, icpt().Exprs...)
	reset.words = append(reset.words, icpt().words...)
	// The rest of the chain is the interface tenants': a labelled flow
	// leaves it here, so the DNS of a labelled tenant whose DNS is direct
	// is not redirected to the interface tenant's DNS listener.
	done := labelled().add("accept", accept)
	return append(append([]*RuleDef{staysOnBridge}, labelledDNS(spec)...), redirect, reset.add("reject with tcp reset", rejectTCPReset()), done)
}

// labelledDNS redirect the DNS of a labelled tenant whose DNS is
// intercepted (dns.go) to its DNS port (map container_dns), with the same
// transparent-socket check, else reject it.
func labelledDNS(spec *nftspec.Spec) []*RuleDef {
	port := fmt.Sprintf(":%s map @%s", flowIdentityText(spec), mapContainerDNS)
	var out []*RuleDef
	for _, proto := range []string{"udp", "tcp"} {
		r := dnsMatch(&RuleDef{}, proto)
		r.add("tproxy to "+port, append(flowIdentity(spec, reg1),
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: mapContainerDNS},
			&expr.TProxy{Family: unix.NFPROTO_UNSPEC, TableFamily: unix.NFPROTO_INET, RegPort: reg1})...)
		r.add("redirect to "+port, &expr.Redir{RegisterProtoMin: reg1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
		miss := (&RuleDef{}).add(fmt.Sprintf("%s == @%s", flowIdentityText(spec), mapContainerDNS),
			append(flowIdentity(spec, reg1), lookup(mapContainerDNS, 0))...)
		out = append(out, r, refuseDNS(dnsMatch(miss, proto), proto))
	}
	return out
}

// labelledVmap is the rule that sends a labelled container's packet to its
// tenant's chain through map name.
func labelledVmap(spec *nftspec.Spec, name string) *RuleDef {
	return (&RuleDef{}).add(fmt.Sprintf("%s vmap @%s", flowIdentityText(spec), name), append(flowIdentity(spec, reg1), vmap(name, 0))...)
}

// labelledStays are the rules of a labelled tenant's forward chain for
// traffic between the containers of one bridge: it leaves by the bridge it
// came in by (fib finds the route out of the input interface). Neighbour
// discovery and MLD between them pass unmarked, as for interface tenants.
func labelledStays(t *nftspec.Tenant) (marked, unmarked []*RuleDef) {
	stay := (&RuleDef{}).add("fib daddr . iif oif exists",
		&expr.Fib{FlagDADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ne32(1)}).add("accept", accept)
	if len(t.Sources) > 0 {
		return []*RuleDef{stay}, nil // the tenant's own neighbour discovery rule is there
	}
	return []*RuleDef{stay}, []*RuleDef{ndRule(&RuleDef{}, true).add("accept", accept)}
}

// addLabelled extends rs (after addForwarded) with the labelled tenants'
// maps and rules.
func addLabelled(rs *Ruleset, spec *nftspec.Spec, table *nftables.Table, tenants []nftspec.Tenant) {
	if !spec.HasLabelled() {
		return
	}
	rs.Sets = append(rs.Sets, labelledSets(spec, table, tenants)...)
	for _, c := range rs.Chains {
		switch c.Chain.Name {
		case chainNATPrerouting:
			c.Rules = append(labelledNAT(spec), c.Rules...)
		case chainForward:
			c.Rules = append([]*RuleDef{labelledVmap(spec, mapContainerFwd)}, c.Rules...)
		case ChainInput:
			// after the listener and DNS port rules, before the interface tenants
			i := slices.IndexFunc(c.Rules, func(r *RuleDef) bool {
				return len(r.words) > 0 && strings.HasPrefix(r.words[len(r.words)-1], "goto "+inputChainName(0)[:len("input_")])
			})
			if i < 0 {
				i = len(c.Rules)
			}
			c.Rules = slices.Insert(c.Rules, i, labelledVmap(spec, mapContainerIn))
		}
	}
	rs.Chains = append(rs.Chains, identityChain(spec, table))
	for i := range tenants {
		if tenants[i].Labelled {
			rs.Chains = append(rs.Chains, tenantIdentityChain(spec, table, &tenants[i]))
		}
	}
}

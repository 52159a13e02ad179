package rules

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Forwarded tenants: containers, pods and VMs behind a bridge. Their packets
// are routed through the host, never sent by a local socket, so `socket
// cgroupv2` cannot see them; they are the tenant's by ingress interface (or
// by reverse-path-checked source range), in every hook:
//
//   - prerouting (filter, mangle): a packet on a tenant interface whose
//     source is outside the tenant's ranges is dropped (spoofing; also
//     IPv6 on a bridge whose IPv6 range is not listed), whatever its
//     protocol, apart from what a guest needs to get an address; and a
//     tenant range seen on an interface that would not route it back is
//     dropped (strict reverse path);
//   - nat_prerouting (nat, dstnat - 10, before Docker's and kube-proxy's
//     nat chains at dstnat): new TCP to an intercept port is REDIRECTed to
//     the tenant's listener port, on the primary address of the ingress
//     interface. Not TPROXY: Docker turns on br_netfilter
//     (bridge-nf-call-iptables=1) and then a TPROXY-assigned socket of a
//     bridged packet is dropped on the way into IP input and the SYN is
//     answered with a reset, while a nat redirect survives br_netfilter.
//     The listener reads the original destination with SO_ORIGINAL_DST,
//     and the input chain lets the redirected flow reach the listener
//     port (ct status dnat) while a direct connect is reset. Only
//     egressfw's own (transparent) listeners ever get a redirected flow:
//     with egressfw down, a local user's socket on the port gets nothing
//     and the SYN is reset (see natChain and inputChain);
//   - forward (filter): the tenant's chain accepts replies, flows it
//     admitted before (admit.go), traffic that stays between its members
//     (leaves by one of its interfaces to an address in its ranges:
//     containers of one network, pods; not intercepted either, see stays)
//     and allow_direct, and rejects the rest, also a LAN host whose
//     address happens to be in the ranges;
//   - input (filter): the same for the host's own addresses (a container
//     that dials the bridge gateway or the host's LAN address arrives
//     here, not in forward), plus neighbour discovery and DHCP, without
//     which a VM gets no address.
//
// A drop or reject in any base chain is final, so no accept in Docker's or
// libvirt's tables can undo these; their tables are never touched.
const (
	chainNATPrerouting = "nat_prerouting"
	chainForward       = "forward"
)

func ingressChainName(slot uint32) string { return fmt.Sprintf("ingress_%d", slot) }
func forwardChainName(slot uint32) string { return fmt.Sprintf("forward_%d", slot) }
func inputChainName(slot uint32) string   { return fmt.Sprintf("input_%d", slot) }

// natPriority runs before the nat chains of Docker and kube-proxy (dstnat):
// the first nat chain that binds a new flow decides its NAT.
var natPriority = nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest - 10)

// iifname matches an interface name or, with a trailing '*', a prefix, as
// nft does: a prefix compares only its own bytes.
func iifname(out bool, pattern string) []expr.Any {
	key := expr.MetaKeyIIFNAME
	if out {
		key = expr.MetaKeyOIFNAME
	}
	data := ifname(pattern)
	if base, wild := strings.CutSuffix(pattern, "*"); wild {
		data = []byte(base)
	}
	return []expr.Any{&expr.Meta{Key: key, Register: reg1}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: data}}
}

func ifnameText(out bool, pattern string) string {
	if out {
		return fmt.Sprintf("oifname %q", pattern)
	}
	return fmt.Sprintf("iifname %q", pattern)
}

// saddr matches the source address against p.
func saddr(p netip.Prefix) []expr.Any { return addrMatch(p, true) }

func saddrText(p netip.Prefix) string {
	return strings.Replace(daddrText(p), " daddr ", " saddr ", 1)
}

// classify adds, for each forwarded tenant, a rule per interface and, for
// tenants without interfaces, per source range, that ends with verdict v
// of the tenant's chain named by name.
func classify(c *ChainDef, tenants []nftspec.Tenant, kind expr.VerdictKind, name func(uint32) string) {
	word := map[expr.VerdictKind]string{expr.VerdictJump: "jump", expr.VerdictGoto: "goto"}[kind]
	for _, t := range tenants {
		v := &expr.Verdict{Kind: kind, Chain: name(t.Slot)}
		for _, n := range t.Interfaces {
			c.Rules = append(c.Rules, (&RuleDef{}).add(ifnameText(false, n), iifname(false, n)...).add(word+" "+name(t.Slot), v))
		}
		if len(t.Interfaces) > 0 {
			continue
		}
		for _, p := range t.Sources {
			c.Rules = append(c.Rules, (&RuleDef{}).add(saddrText(p), saddr(p)...).add(word+" "+name(t.Slot), v))
		}
	}
}

// ingressRules are the rules put first in the prerouting chain: the spoof
// check of interface tenants, then the reverse-path check of every tenant
// source range.
func ingressRules(tenants []nftspec.Tenant) []*RuleDef {
	pre := &ChainDef{}
	var withSources []nftspec.Tenant
	for _, t := range tenants {
		if len(t.Interfaces) > 0 && len(t.Sources) > 0 {
			withSources = append(withSources, t)
		}
	}
	classify(pre, withSources, expr.VerdictJump, ingressChainName)
	for _, t := range tenants {
		for _, p := range t.Sources {
			r := &RuleDef{}
			r.add(saddrText(p), saddr(p)...)
			r.add("fib saddr . iif oif missing",
				&expr.Fib{FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ne32(0)})
			r.add("drop", &expr.Verdict{Kind: expr.VerdictDrop})
			pre.Rules = append(pre.Rules, r)
		}
	}
	return pre.Rules
}

// ingressChain drops what arrives on the tenant's interfaces from outside
// its source ranges, in every protocol and family. The only exceptions are
// what a guest sends before it has an address in them, without which a VM
// gets none: DHCPv4 from 0.0.0.0, and neighbour discovery, MLD and DHCPv6
// from a link-local or the unspecified address. A link-local source can
// send nothing else (no TCP, UDP or ICMP echo to the host, the listener or
// other guests), so a bridge that also carries IPv6 the ranges do not name
// is no way around them.
func ingressChain(table *nftables.Table, t *nftspec.Tenant) *ChainDef {
	c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: ingressChainName(t.Slot)}}
	ret := func() *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictReturn} }
	for _, p := range t.Sources {
		c.Rules = append(c.Rules, (&RuleDef{}).add(saddrText(p), saddr(p)...).add("return", ret()))
	}
	unconfigured := (&RuleDef{}).add("ip saddr 0.0.0.0", saddr(netip.MustParsePrefix("0.0.0.0/32"))...)
	c.Rules = append(c.Rules, dhcp4Rule(unconfigured).add("return", ret()))
	for _, src := range []string{"fe80::/10", "::/128"} {
		p := netip.MustParsePrefix(src)
		c.Rules = append(c.Rules, ndRule((&RuleDef{}).add(saddrText(p), saddr(p)...), false).add("return", ret()))
	}
	dhcp6 := (&RuleDef{}).add("ip6 saddr fe80::/10", saddr(netip.MustParsePrefix("fe80::/10"))...)
	dhcp6.add("udp sport 546", append(l4proto(unix.IPPROTO_UDP), thSport(), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(546)})...)
	dhcp6.add("udp dport 547", thDport(), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(547)})
	c.Rules = append(c.Rules, dhcp6.add("return", ret()))
	c.Rules = append(c.Rules, (&RuleDef{}).add("drop", &expr.Verdict{Kind: expr.VerdictDrop}))
	return c
}

// ndRule matches the ICMPv6 types of neighbour discovery and MLD that a
// host sends to join its link. Without v6, r already matched IPv6 (an ip6
// address) and the family check is left out, as nft leaves it out.
func ndRule(r *RuleDef, v6 bool) *RuleDef {
	nd := newSet(&nftables.Set{Anonymous: true, Constant: true, KeyType: nftables.TypeICMP6Type}, []Element{
		{133, nftables.SetElement{Key: []byte{133}}, "nd-router-solicit"},
		{135, nftables.SetElement{Key: []byte{135}}, "nd-neighbor-solicit"},
		{136, nftables.SetElement{Key: []byte{136}}, "nd-neighbor-advert"},
		{143, nftables.SetElement{Key: []byte{143}}, "mld2-listener-report"},
	})
	look := &expr.Lookup{SourceRegister: reg1}
	r.Anon, r.AnonLookup = nd, look
	var family []expr.Any
	if v6 {
		family = nfproto(true)
	}
	return r.add("icmpv6 type { "+strings.Join(nd.texts, ", ")+" }", append(family, append(l4proto(unix.IPPROTO_ICMPV6),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}, look)...)...)
}

// dhcp4Rule extends r to match a DHCPv4 client message.
func dhcp4Rule(r *RuleDef) *RuleDef {
	r.add("udp sport 68", append(l4proto(unix.IPPROTO_UDP), thSport(), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(68)})...)
	r.add("udp dport 67", thDport(), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(67)})
	return r
}

// natChain redirects a forwarded tenant's new TCP to an intercept port to
// the tenant's listener port (see the comment at the top of this file for
// why REDIRECT and not TPROXY), unless it stays between members of the
// tenant (see stays).
//
// The redirect happens only if a transparent socket, which only egressfw
// can open, listens on the target: the tproxy statement is used as that
// test (it finds the listener REDIRECT would deliver to, on the ingress
// interface's primary address, and fails if there is none or it is not
// transparent; the socket it assigns is the one the packet reaches
// anyway). Otherwise the SYN is reset here, before NAT: a reset of the
// redirected packet would carry the listener's address and port, which
// the client does not know, and under br_netfilter the kernel sends it
// straight to the bridge port, past the NAT that could fix it.
func natChain(table *nftables.Table, tenants []nftspec.Tenant) *ChainDef {
	c := baseChain(table, chainNATPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting,
		natPriority, "type nat hook prerouting priority dstnat - 10;")
	for _, t := range tenants {
		for _, match := range classifiers(&t) {
			for _, r := range stays(&t, match, false) {
				c.Rules = append(c.Rules, r.add("accept", accept))
			}
			if t.DNS == nftspec.DNSIntercept {
				c.Rules = append(c.Rules, natDNSRules(&t, match)...)
			}
			icpt := func() *RuleDef {
				return match().add("tcp dport @"+SetIntercept, append(l4proto(unix.IPPROTO_TCP), thDport(), lookup(SetIntercept, 0))...)
			}
			r := icpt()
			r.add(fmt.Sprintf("tproxy to :%d", t.ListenerPort), &expr.Immediate{Register: reg1, Data: be16(t.ListenerPort)},
				&expr.TProxy{Family: unix.NFPROTO_UNSPEC, TableFamily: unix.NFPROTO_INET, RegPort: reg1})
			r.add(fmt.Sprintf("redirect to :%d", t.ListenerPort),
				&expr.Redir{RegisterProtoMin: reg1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
			c.Rules = append(c.Rules, r, icpt().add("reject with tcp reset", rejectTCPReset()))
		}
	}
	return c
}

// classifiers returns, for each way a packet is the tenant's (an interface,
// or without interfaces a source range), a function starting a rule that
// matches it.
func classifiers(t *nftspec.Tenant) []func() *RuleDef {
	var out []func() *RuleDef
	for _, n := range t.Interfaces {
		out = append(out, func() *RuleDef { return (&RuleDef{}).add(ifnameText(false, n), iifname(false, n)...) })
	}
	if len(t.Interfaces) > 0 {
		return out
	}
	for _, p := range t.Sources {
		out = append(out, func() *RuleDef { return (&RuleDef{}).add(saddrText(p), saddr(p)...) })
	}
	return out
}

// forwardChain sends forwarded tenant packets to the tenant's chain.
func forwardChain(table *nftables.Table, tenants []nftspec.Tenant) *ChainDef {
	c := baseChain(table, chainForward, nftables.ChainTypeFilter, nftables.ChainHookForward,
		nftables.ChainPriorityFilter, "type filter hook forward priority filter;")
	classify(c, tenants, expr.VerdictGoto, forwardChainName)
	return c
}

// tenantForwardChain is a forwarded tenant's egress: replies, flows it
// admitted (admit.go), traffic that stays between its members (see stays),
// neighbour discovery and allow_direct pass; the rest is rejected.
// Neighbour discovery and MLD between guests on one bridge have multicast
// and link-local destinations outside the ranges; they pass whatever the
// output interface, as they cannot reach beyond the link: a router lowers
// the hop limit of 255 that a receiver requires, and MLD's hop limit of 1
// is never forwarded.
func tenantForwardChain(table *nftables.Table, t *nftspec.Tenant, ctMask uint32) *ChainDef {
	c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: forwardChainName(t.Slot)}}
	first := admittedRules(t, ctMask)
	c.Rules = append(c.Rules, first...)
	for _, r := range stays(t, nil, true) {
		c.Rules = append(c.Rules, r.add("accept", accept))
	}
	var nd *RuleDef // matched without state, not marked
	if len(t.Sources) > 0 {
		nd = ndRule(&RuleDef{}, true).add("accept", accept)
		c.Rules = append(c.Rules, nd)
	}
	exempt := append(first, nd)
	if t.Labelled {
		marked, unmarked := labelledStays(t)
		c.Rules = append(append(c.Rules, marked...), unmarked...)
		exempt = append(exempt, unmarked...)
	}
	return admit(finishTenant(c, t), t, ctMask, exempt...)
}

// tenantInputChain is a forwarded tenant's traffic to the host's own
// addresses: internal like any other, apart from replies, flows it
// admitted, neighbour discovery, DHCP and allow_direct. Redirected
// intercepts were accepted by the input chain before.
func tenantInputChain(table *nftables.Table, t *nftspec.Tenant, ctMask uint32) *ChainDef {
	c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: inputChainName(t.Slot)}}
	first := admittedRules(t, ctMask)
	c.Rules = append(c.Rules, first...)
	dhcp6 := &RuleDef{}
	dhcp6.add("ip6 saddr fe80::/10", saddr(netip.MustParsePrefix("fe80::/10"))...)
	dhcp6.add("udp dport 547", append(l4proto(unix.IPPROTO_UDP), thDport(), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(547)})...)
	stateless := []*RuleDef{ndRule(&RuleDef{}, true).add("accept", accept), dhcp4Rule(&RuleDef{}).add("accept", accept), dhcp6.add("accept", accept)}
	c.Rules = append(c.Rules, stateless...) // matched without state, not marked
	return admit(finishTenant(c, t), t, ctMask, append(first, stateless...)...)
}

// finishTenant appends allow_direct and the final verdict.
func finishTenant(c *ChainDef, t *nftspec.Tenant) *ChainDef {
	for _, d := range t.AllowDirect {
		c.Rules = append(c.Rules, directRules(d)...)
	}
	if t.Report {
		c.Rules = append(c.Rules, (&RuleDef{}).add("counter packets 0 bytes 0", &expr.Counter{}).add("accept", accept))
		return c
	}
	c.Rules = append(c.Rules, (&RuleDef{}).add("goto "+ChainDeny, &expr.Verdict{Kind: expr.VerdictGoto, Chain: ChainDeny}))
	return c
}

// addForwarded extends rs (built by Build) with the forwarded
// tenants' rules and chains.
func addForwarded(rs *Ruleset, table *nftables.Table, tenants []nftspec.Tenant, ctMask uint32) {
	var fwd []nftspec.Tenant
	for _, t := range tenants {
		if t.Forwarded() {
			fwd = append(fwd, t)
		}
	}
	if len(fwd) == 0 {
		return
	}
	for _, c := range rs.Chains {
		switch c.Chain.Name {
		case ChainPrerouting:
			c.Rules = append(ingressRules(fwd), c.Rules...)
		case ChainInput:
			classify(c, fwd, expr.VerdictGoto, inputChainName)
		}
	}
	rs.Chains = append(rs.Chains, natChain(table, fwd), forwardChain(table, fwd))
	for i := range fwd {
		t := &fwd[i]
		if len(t.Interfaces) > 0 && len(t.Sources) > 0 {
			rs.Chains = append(rs.Chains, ingressChain(table, t))
		}
		rs.Chains = append(rs.Chains, tenantForwardChain(table, t, ctMask), tenantInputChain(table, t, ctMask))
	}
}

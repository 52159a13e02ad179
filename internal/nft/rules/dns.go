package rules

import (
	"fmt"
	"slices"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Tenant DNS. A tenant whose DNS is intercepted (DNSIntercept) has every
// packet to port 53, UDP and TCP, IPv4 and IPv6, whatever address it was
// sent to, redirected to its own DNS listener port (Tenant.DNSPort), where
// egressfw answers from its own resolver and policy. The port is the
// tenant, as for the TCP listeners. A nat redirect (DNAT), not TPROXY,
// for local and forwarded tenants alike: the kernel maps the listener's
// reply back to the address and port the tenant queried (TPROXY would
// need a reply socket bound to that address, which a local resolver such
// as systemd-resolved's 127.0.0.53:53 may hold), and conntrack keeps the
// original destination for the listener to read.
//
//   - Local tenants: the tenant chain (output, route) stores the slot in
//     the ct mark of a packet to port 53 and accepts it, before
//     allow_direct (an allow_direct entry for a resolver keeps working:
//     egressfw answers instead); the nat_output chain (nat, dstnat - 10)
//     redirects the flow's first packet to 127.0.0.1 or ::1 on the port
//     that map @dns_redirect gives the slot. The output chain's running
//     rule, which keeps an intercepted TCP flow on its way to the TCP
//     listener, skips port 53 (TCP intercepts never use it: Validate).
//   - Forwarded tenants: nat_prerouting redirects port 53 to the DNS port
//     on the address of the ingress interface, after the rules that let
//     traffic between the tenant's members pass, and only when a
//     transparent socket listens there (the tproxy statement as a test,
//     as for TCP); otherwise the packet is rejected.
//   - Input: a packet to a DNS port (@dns_ports) that a redirect brought
//     is dropped unless a transparent socket, which only egressfw can
//     open, receives it: a local user who binds the port while egressfw is
//     down gets nothing (for local tenants this is the only check, as
//     tproxy cannot be used in the output hook); with no socket at all the
//     stack's own error goes back to the tenant. A packet that reaches a
//     DNS port directly is rejected.
//
// DNS over TLS (853) and anything else is not touched: denied as before
// unless allow_direct allows it. A tenant with DNSDirect keeps port 53
// governed by allow_direct.
const (
	setDNSPorts    = "dns_ports"
	mapDNSRedirect = "dns_redirect"
	chainNATOutput = "nat_output"
)

// dnsTenants returns the tenants whose DNS is intercepted, by slot.
func dnsTenants(tenants []nftspec.Tenant) []nftspec.Tenant {
	var out []nftspec.Tenant
	for _, t := range tenants {
		if t.DNS == nftspec.DNSIntercept {
			out = append(out, t)
		}
	}
	return out
}

// dnsSets are the DNS ports (input checks) and the slot to port map (the
// local tenants' redirect).
func dnsSets(table *nftables.Table, tenants []nftspec.Tenant) []*SetDef {
	var ports, redirect []Element
	for _, t := range tenants {
		ports = append(ports, Element{uint64(t.DNSPort), nftables.SetElement{Key: be16(t.DNSPort)}, fmt.Sprint(t.DNSPort)})
		redirect = append(redirect, Element{uint64(t.Slot), nftables.SetElement{Key: ne32(t.Slot), Val: be16(t.DNSPort)},
			fmt.Sprintf("0x%08x : %d", t.Slot, t.DNSPort)})
	}
	return []*SetDef{
		newSet(&nftables.Set{Table: table, Name: setDNSPorts, KeyType: nftables.TypeInetService}, ports),
		newSet(&nftables.Set{Table: table, Name: mapDNSRedirect, IsMap: true, KeyType: nftables.TypeMark,
			KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeInetService}, redirect),
	}
}

// dnsMatch starts a rule matching proto ("tcp" or "udp") to port 53.
func dnsMatch(r *RuleDef, proto string) *RuleDef {
	return r.add(proto+" dport 53", append(l4proto(protoNum(proto)), thDport(),
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(nftspec.StandardDNSPort)})...)
}

// refuseDNS ends r with the refusal of a DNS query over proto: a TCP
// reset, an ICMP error for UDP.
func refuseDNS(r *RuleDef, proto string) *RuleDef {
	if proto == "tcp" {
		return r.add("reject with tcp reset", rejectTCPReset())
	}
	return r.add("reject with icmpx admin-prohibited", rejectAdminProhibited())
}

func protoNum(proto string) byte {
	if proto == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// tenantDNSRules mark a local tenant's DNS with its slot and accept it;
// nat_output redirects it.
func tenantDNSRules(spec *nftspec.Spec, t *nftspec.Tenant) []*RuleDef {
	var out []*RuleDef
	for _, proto := range []string{"udp", "tcp"} {
		r := dnsMatch(&RuleDef{}, proto)
		r.add(markSetText("ct", spec.CtMarkMask, t.Slot), setBits(true, spec.CtMarkMask, t.Slot)...)
		out = append(out, r.add("accept", accept))
	}
	return out
}

// natOutputChain redirects local tenants' DNS, marked by their chains, to
// their DNS port on loopback.
func natOutputChain(spec *nftspec.Spec, table *nftables.Table) *ChainDef {
	c := baseChain(table, chainNATOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput,
		natPriority, "type nat hook output priority -110;")
	for _, proto := range []string{"udp", "tcp"} {
		r := dnsMatch(&RuleDef{}, proto)
		r.add("", ctMark(),
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(spec.CtMarkMask), Xor: ne32(0)},
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: mapDNSRedirect},
			&expr.Redir{RegisterProtoMin: reg1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
		r.add(fmt.Sprintf("redirect to :ct mark & 0x%08x map @%s", spec.CtMarkMask, mapDNSRedirect))
		c.Rules = append(c.Rules, r)
	}
	return c
}

// inputDNSRules let only redirected DNS reach a DNS port, and only a
// transparent socket there.
func inputDNSRules() []*RuleDef {
	var out []*RuleDef
	for _, proto := range []string{"udp", "tcp"} {
		port := func() *RuleDef {
			return (&RuleDef{}).add(proto+" dport @"+setDNSPorts, append(l4proto(protoNum(proto)), thDport(), lookup(setDNSPorts, 0))...)
		}
		out = append(out,
			port().add("ct status dnat", ctStatusDNAT()...).add("socket transparent 0", socketTransparent(false)...).
				add("drop", &expr.Verdict{Kind: expr.VerdictDrop}),
			port().add("ct status dnat", ctStatusDNAT()...).add("accept", accept),
			port().add("goto "+ChainDeny, &expr.Verdict{Kind: expr.VerdictGoto, Chain: ChainDeny}))
	}
	return out
}

// natDNSRules redirect a forwarded tenant's DNS (match starts each rule)
// to its DNS port if a transparent socket listens there, else reject it.
func natDNSRules(t *nftspec.Tenant, match func() *RuleDef) []*RuleDef {
	var out []*RuleDef
	for _, proto := range []string{"udp", "tcp"} {
		r := dnsMatch(match(), proto)
		r.add(fmt.Sprintf("tproxy to :%d", t.DNSPort), &expr.Immediate{Register: reg1, Data: be16(t.DNSPort)},
			&expr.TProxy{Family: unix.NFPROTO_UNSPEC, TableFamily: unix.NFPROTO_INET, RegPort: reg1})
		r.add(fmt.Sprintf("redirect to :%d", t.DNSPort), &expr.Redir{RegisterProtoMin: reg1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
		out = append(out, r, refuseDNS(dnsMatch(match(), proto), proto))
	}
	return out
}

// addDNS extends rs (built by Build) with the DNS rules of the
// intercepting tenants; a spec without any gets nothing.
func addDNS(rs *Ruleset, spec *nftspec.Spec, table *nftables.Table, tenants []nftspec.Tenant) {
	dns := dnsTenants(tenants)
	if len(dns) == 0 {
		return
	}
	rs.Sets = append(rs.Sets, dnsSets(table, dns)...)
	for _, c := range rs.Chains {
		switch c.Chain.Name {
		case ChainInput:
			// After the TCP listener rules, before the forwarded tenants'
			// classification, which would reject a redirected query.
			c.Rules = slices.Insert(c.Rules, 3, inputDNSRules()...)
		case ChainOutput:
			c.Rules[1] = runningRule(spec, true) // not port 53
		}
		if slot, ok := TenantSlot(c.Chain.Name); ok {
			if t := slices.IndexFunc(dns, func(t nftspec.Tenant) bool { return t.Slot == slot }); t >= 0 {
				// After the replies and TCP intercept rules, before allow_direct.
				c.Rules = slices.Insert(c.Rules, 2, tenantDNSRules(spec, &dns[t])...)
			}
		}
	}
	rs.Chains = append(rs.Chains, natOutputChain(spec, table))
}

// TenantSlot reports the slot of a tenant_SLOT chain (the name
// TenantChainName gives slot, slot > 0).
func TenantSlot(chain string) (uint32, bool) {
	var slot uint32
	n, err := fmt.Sscanf(chain, "tenant_%d", &slot)
	return slot, err == nil && n == 1 && slot > 0 && chain == TenantChainName(slot)
}

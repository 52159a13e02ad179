package nft

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Object names inside the table.
const (
	setIntercept    = "intercept_ports"
	setListener     = "listener_ports"
	mapTProxy       = "tproxy_ports"
	setSlots        = "tenant_slots"
	mapUIDs         = "uids"
	chainOutput     = "output"
	chainPrerouting = "prerouting"
	chainInput      = "input"
	chainDeny       = "deny"
	chainEscape     = "postrouting"
)

func cgroupMapName(level int) string     { return fmt.Sprintf("cgroup_l%d", level) }
func tenantChainName(slot uint32) string { return fmt.Sprintf("tenant_%d", slot) }

// ruleset is the whole table as data: the same value is turned into one
// netlink batch (program) and into nft syntax (Render), so the two agree by
// construction; a kernel test checks the printing details.
type ruleset struct {
	family nftables.TableFamily // 0: inet
	sets   []*setDef
	chains []*chainDef
}

type setDef struct {
	set   *nftables.Set
	elems []nftables.SetElement
	texts []string // element texts in nft's (numeric) sort order
}

type chainDef struct {
	chain  *nftables.Chain
	header string // "type ... hook ... priority ...; policy accept;" for base chains
	rules  []*ruleDef
}

type ruleDef struct {
	exprs   []expr.Any
	words   []string
	comment string
	anon    *setDef // anonymous set the rule looks up, created just before it
	// anonLookup is the rule's lookup of anon; it learns the set's name
	// and batch id when the set is added.
	anonLookup *expr.Lookup
}

func (r *ruleDef) add(text string, e ...expr.Any) *ruleDef {
	if text != "" {
		r.words = append(r.words, text)
	}
	r.exprs = append(r.exprs, e...)
	return r
}

// userData carries the rule comment the way nft stores it.
func (r *ruleDef) userData() []byte {
	if r.comment == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, r.comment)
}

func (r *ruleDef) text() string {
	s := strings.Join(r.words, " ")
	if r.comment != "" {
		s += ` comment "` + r.comment + `"`
	}
	return s
}

// element is a map or set entry with its sort key for printing.
type element struct {
	sortKey uint64
	elem    nftables.SetElement
	text    string // "" for an interval's end, which nft does not print
}

func newSet(s *nftables.Set, elems []element) *setDef {
	slices.SortFunc(elems, func(a, b element) int { return cmp.Compare(a.sortKey, b.sortKey) })
	d := &setDef{set: s}
	for _, e := range elems {
		d.elems = append(d.elems, e.elem)
		if e.text != "" {
			d.texts = append(d.texts, e.text)
		}
	}
	return d
}

func portElems(ports []uint16) []element {
	var out []element
	for _, p := range ports {
		out = append(out, element{uint64(p), nftables.SetElement{Key: be16(p)}, fmt.Sprint(p)})
	}
	return out
}

func jump(slot uint32) *expr.Verdict {
	return &expr.Verdict{Kind: expr.VerdictJump, Chain: tenantChainName(slot)}
}

// sortedTenants returns the tenants ordered by slot, for stable output.
func sortedTenants(spec *nftspec.Spec) []nftspec.Tenant {
	ts := slices.Clone(spec.Tenants)
	slices.SortFunc(ts, func(a, b nftspec.Tenant) int { return cmp.Compare(a.Slot, b.Slot) })
	return ts
}

// cgroupElems returns, per level in use, the verdict-map entries for the
// cgroups that currently exist.
func cgroupElems(spec *nftspec.Spec, ids nftspec.CgroupIDs) map[int][]element {
	out := map[int][]element{}
	seen := map[uint64]bool{}
	for _, t := range sortedTenants(spec) {
		for _, c := range t.Cgroups {
			id, ok := ids[c]
			if !ok || seen[id] {
				continue
			}
			seen[id] = true
			l := nftspec.CgroupLevel(c)
			e := nftables.SetElement{Key: binaryutil.NativeEndian.PutUint64(id), VerdictData: jump(t.Slot), Comment: c}
			out[l] = append(out[l], element{id, e, fmt.Sprintf("%d comment \"%s\" : jump %s", id, c, tenantChainName(t.Slot))})
		}
	}
	// A tenant cgroup below a guard matches at its own, deeper level first
	// (levels are looked up deepest first); anything else below the guard
	// is denied.
	for _, g := range spec.Guards {
		id, ok := ids[g]
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		l := nftspec.CgroupLevel(g)
		e := nftables.SetElement{Key: binaryutil.NativeEndian.PutUint64(id),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainDeny}, Comment: g}
		out[l] = append(out[l], element{id, e, fmt.Sprintf("%d comment \"%s\" : goto %s", id, g, chainDeny)})
	}
	return out
}

// buildRuleset turns a validated spec and the current cgroup ids into the
// table's contents.
func buildRuleset(spec *nftspec.Spec, ids nftspec.CgroupIDs) *ruleset {
	table := &nftables.Table{Name: spec.Table, Family: nftables.TableFamilyINet}
	rs := &ruleset{}
	tenants := sortedTenants(spec)

	var listenPorts []uint16
	var tproxy, slots []element
	for _, t := range tenants {
		listenPorts = append(listenPorts, t.ListenerPort)
		slots = append(slots, element{uint64(t.Slot), nftables.SetElement{Key: ne32(t.Slot)}, fmt.Sprintf("0x%08x", t.Slot)})
		tproxy = append(tproxy, element{uint64(t.Slot),
			nftables.SetElement{Key: ne32(t.Slot), Val: be16(t.ListenerPort)},
			fmt.Sprintf("0x%08x : %d", t.Slot, t.ListenerPort)})
	}
	rs.sets = append(rs.sets,
		newSet(&nftables.Set{Table: table, Name: setIntercept, KeyType: nftables.TypeInetService}, portElems(spec.InterceptPorts)),
		newSet(&nftables.Set{Table: table, Name: setListener, KeyType: nftables.TypeInetService}, portElems(listenPorts)),
		newSet(&nftables.Set{Table: table, Name: setSlots, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian}, slots),
		newSet(&nftables.Set{Table: table, Name: mapTProxy, IsMap: true, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian,
			DataType: nftables.TypeInetService}, tproxy))
	cg := cgroupElems(spec, ids)
	for _, l := range spec.Levels() {
		rs.sets = append(rs.sets, newSet(&nftables.Set{Table: table, Name: cgroupMapName(l), IsMap: true,
			KeyType: nftables.TypeCGroupV2, KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict}, cg[l]))
	}
	if spec.HasUIDs() {
		rs.sets = append(rs.sets, uidMap(table, uidElems(tenants)))
	}

	rs.chains = append(rs.chains, outputChain(spec, table), escapeChain(spec, table), preroutingChain(spec, table),
		inputChain(table), denyChain(table))
	for _, t := range tenants {
		rs.chains = append(rs.chains, tenantChain(spec, table, &t))
	}
	addForwarded(rs, table, tenants, spec.CtMarkMask)
	addDNS(rs, spec, table, tenants)
	addLabelled(rs, spec, table, tenants)
	return rs
}

func baseChain(table *nftables.Table, name string, typ nftables.ChainType, hook *nftables.ChainHook,
	prio *nftables.ChainPriority, header string) *chainDef {
	policy := nftables.ChainPolicyAccept
	return &chainDef{
		chain:  &nftables.Chain{Table: table, Name: name, Type: typ, Hooknum: hook, Priority: prio, Policy: &policy},
		header: header + " policy accept;",
	}
}

// outputChain classifies locally generated packets: bypass, intercepted
// flows already running, replies, then tenant lookup (cgroups deepest level
// first, then uid) which jumps to the tenant's chain.
func outputChain(spec *nftspec.Spec, table *nftables.Table) *chainDef {
	c := baseChain(table, chainOutput, nftables.ChainTypeRoute, nftables.ChainHookOutput,
		nftables.ChainPriorityMangle, "type route hook output priority mangle;")
	bypass := &ruleDef{}
	bypass.add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", spec.MarkMask, spec.BypassMark),
		maskedCmp(metaMark(), spec.MarkMask, spec.BypassMark, expr.CmpOpEq)...)
	bypass.add("accept", accept)

	running := runningRule(spec, false)
	// No "ct state established accept" before the tenant lookup: conntrack
	// matches a packet by its tuple, not its socket, so a tenant that binds
	// the source port of another socket's live flow (e.g. the resolver's)
	// would ride that flow's entry out. Tenants are classified by socket
	// first; everything else falls through to the policy (accept).
	c.rules = append(c.rules, bypass, running)

	for _, l := range spec.Levels() {
		r := &ruleDef{}
		r.add(fmt.Sprintf("socket cgroupv2 level %d", l), &expr.Socket{Key: expr.SocketKeyCgroupv2, Level: uint32(l), Register: reg1})
		r.add("vmap @"+cgroupMapName(l), vmap(cgroupMapName(l), 0))
		c.rules = append(c.rules, r)
	}
	if spec.HasUIDs() {
		r := &ruleDef{}
		r.add("meta skuid vmap @"+mapUIDs, uidLookup()...)
		c.rules = append(c.rules, r)
	}
	return c
}

// runningRule keeps an intercepted TCP flow going to lo, also for the
// packets a closed tenant socket's TIME_WAIT sends (they match no socket
// rule). Only TCP, and only ct marks that are slots of ours: another
// tool's ct mark (e.g. wg-quick's) never pulls its flows into the
// listener. With tenant DNS intercepted, not port 53: those flows carry a
// tenant's slot too, but are redirected to its DNS listener (dns.go).
func runningRule(spec *nftspec.Spec, dns bool) *ruleDef {
	running := &ruleDef{}
	if dns {
		running.add("tcp dport != 53", append(l4proto(unix.IPPROTO_TCP), thDport(),
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: be16(nftspec.StandardDNSPort)})...)
	} else {
		running.add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...)
	}
	running.add("ct direction original", ctDirOriginal()...)
	running.add(fmt.Sprintf("ct mark & 0x%08x == @%s", spec.CtMarkMask, setSlots), maskedLookup(ctMark(), spec.CtMarkMask, setSlots)...)
	running.add(markSetText("meta", spec.MarkMask, spec.InterceptMark), setBits(false, spec.MarkMask, spec.InterceptMark)...)
	return running.add("accept", accept)
}

// markSetText prints "x mark set x mark & M | V" the way nft shows a
// (x & ^mask) ^ val bitwise: the printed mask is the kernel mask | val.
func markSetText(what string, mask, val uint32) string {
	return fmt.Sprintf("%s mark set %s mark & 0x%08x | 0x%08x", what, what, ^mask|val, val)
}

// preroutingChain hands intercepted packets, looped back through lo by the
// policy route, to the tenant's transparent listener. The port comes from
// the tenant slot in the conntrack mark.
func preroutingChain(spec *nftspec.Spec, table *nftables.Table) *chainDef {
	c := baseChain(table, chainPrerouting, nftables.ChainTypeFilter, nftables.ChainHookPrerouting,
		nftables.ChainPriorityMangle, "type filter hook prerouting priority mangle;")
	for _, v6 := range []bool{false, true} {
		fam, addr, text := byte(unix.NFPROTO_IPV4), []byte{127, 0, 0, 1}, "tproxy ip to 127.0.0.1"
		if v6 {
			fam, addr, text = unix.NFPROTO_IPV6, make([]byte, 16), "tproxy ip6 to [::1]"
			addr[15] = 1
		}
		r := &ruleDef{}
		r.add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", spec.MarkMask, spec.InterceptMark),
			maskedCmp(metaMark(), spec.MarkMask, spec.InterceptMark, expr.CmpOpEq)...)
		r.add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...)
		r.add(map[bool]string{false: "meta nfproto ipv4", true: "meta nfproto ipv6"}[v6], nfproto(v6)...)
		r.add("", ctMark(),
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(spec.CtMarkMask), Xor: ne32(0)},
			&expr.Lookup{SourceRegister: reg1, DestRegister: reg2, IsDestRegSet: true, SetName: mapTProxy},
			&expr.Immediate{Register: reg1, Data: addr},
			&expr.TProxy{Family: fam, TableFamily: unix.NFPROTO_INET, RegAddr: reg1, RegPort: reg2})
		r.add(fmt.Sprintf("%s:ct mark & 0x%08x map @%s", text, spec.CtMarkMask, mapTProxy))
		r.add("accept", accept)
		c.rules = append(c.rules, r)
	}
	// No listener for the slot (daemon gone, or no map entry): without this
	// the packet would be delivered locally to the original destination,
	// whose reset cannot be routed from a non-local source, and the client
	// would hang until its timeout. Reset it here instead: fail closed, fast.
	miss := &ruleDef{}
	miss.add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", spec.MarkMask, spec.InterceptMark),
		maskedCmp(metaMark(), spec.MarkMask, spec.InterceptMark, expr.CmpOpEq)...)
	miss.add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...)
	miss.add("reject with tcp reset", rejectTCPReset())
	c.rules = append(c.rules, miss)
	return c
}

// inputChain rejects connections made straight to a listener port. TPROXY
// keeps the original destination port, so intercepted packets never match;
// DNATed ones (forwarded tenants' REDIRECT) are let through, but never to
// a socket that is not transparent: REDIRECT, unlike TPROXY, delivers to
// any socket on the port, and while egressfw is down any local user may
// bind it. Only egressfw's listeners are transparent (IP_TRANSPARENT needs
// CAP_NET_ADMIN), and the request and child sockets of their connections
// inherit the flag, so every packet of a redirected flow passes. The nat
// chain already redirects only to a transparent listener (and resets the
// SYN otherwise); this catches any other DNAT to a listener port and a
// listener swapped in between. Such packets are dropped: a reset of a
// DNATed packet would not reach the client (see natChain). With no socket
// at all the stack itself answers with a reset the NAT translates back.
func inputChain(table *nftables.Table) *chainDef {
	c := baseChain(table, chainInput, nftables.ChainTypeFilter, nftables.ChainHookInput,
		nftables.ChainPriorityFilter, "type filter hook input priority filter;")
	dport := func() *ruleDef {
		r := &ruleDef{}
		r.add("tcp dport @"+setListener, append(l4proto(unix.IPPROTO_TCP), thDport(), lookup(setListener, 0))...)
		return r
	}
	c.rules = append(c.rules,
		dport().add("ct status dnat", ctStatusDNAT()...).add("socket transparent 0", socketTransparent(false)...).
			add("drop", &expr.Verdict{Kind: expr.VerdictDrop}),
		dport().add("ct status dnat", ctStatusDNAT()...).add("accept", accept),
		dport().add("reject with tcp reset", rejectTCPReset()))
	return c
}

// escapeChain catches intercepted packets that the policy route did not
// loop to lo. A socket bound to a device (SO_BINDTODEVICE, or a link-local
// address with a scope id) is routed by its device, so the re-route after
// the output chain never consults the fwmark table and the SYN would leave
// directly. Only postrouting sees the device a packet really leaves by (the
// output hook keeps the device of the first route), and the kernel allows
// no reject there, so such packets are dropped: the tenant fails closed.
func escapeChain(spec *nftspec.Spec, table *nftables.Table) *chainDef {
	c := baseChain(table, chainEscape, nftables.ChainTypeFilter, nftables.ChainHookPostrouting,
		nftables.ChainPriorityFilter, "type filter hook postrouting priority filter;")
	r := &ruleDef{}
	r.add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", spec.MarkMask, spec.InterceptMark),
		maskedCmp(metaMark(), spec.MarkMask, spec.InterceptMark, expr.CmpOpEq)...)
	r.add(`oifname != "lo"`, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ifname("lo")})
	r.add("drop", &expr.Verdict{Kind: expr.VerdictDrop})
	c.rules = append(c.rules, r)
	return c
}

// ifname is an interface name as the kernel compares it: 16 bytes, NUL padded.
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

// tenantChain is entered for a tenant's packets that are neither replies
// nor part of an intercepted flow: intercept, allow direct, or deny.
func tenantChain(spec *nftspec.Spec, table *nftables.Table, t *nftspec.Tenant) *chainDef {
	c := &chainDef{chain: &nftables.Chain{Table: table, Name: tenantChainName(t.Slot)}}
	// Replies of TCP connections the tenant serves. TCP window tracking
	// makes another socket's packets on the same tuple invalid, so this
	// cannot carry a reused flow; UDP gets no such pass.
	replies := (&ruleDef{}).add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...).
		add("ct direction reply", ctDirReply()...).add("accept", accept)
	c.rules = append(c.rules, replies)
	icpt := &ruleDef{comment: t.Name}
	icpt.add("tcp dport @"+setIntercept, append(l4proto(unix.IPPROTO_TCP), thDport(), lookup(setIntercept, 0))...)
	icpt.add(markSetText("ct", spec.CtMarkMask, t.Slot), setBits(true, spec.CtMarkMask, t.Slot)...)
	icpt.add(markSetText("meta", spec.MarkMask, spec.InterceptMark), setBits(false, spec.MarkMask, spec.InterceptMark)...)
	icpt.add("accept", accept)
	c.rules = append(c.rules, icpt)
	return finishTenant(c, t)
}

// denyChain rejects so that clients fail fast: TCP with a reset, anything
// else with ICMP administratively prohibited. It is shared by all tenants
// (one rule per tenant fewer keeps large applies fast).
func denyChain(table *nftables.Table) *chainDef {
	c := &chainDef{chain: &nftables.Chain{Table: table, Name: chainDeny}}
	c.rules = append(c.rules,
		(&ruleDef{}).add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...).add("reject with tcp reset", rejectTCPReset()),
		(&ruleDef{}).add("reject with icmpx admin-prohibited", rejectAdminProhibited()))
	return c
}

// directRules allows one allow_direct entry: one rule per protocol when
// ports are given (so "tcp dport" reads naturally), otherwise one rule.
func directRules(d nftspec.Direct) []*ruleDef {
	protos := []string{d.Proto}
	if d.Proto == "" && len(d.Ports) > 0 {
		protos = []string{"tcp", "udp"}
	}
	var out []*ruleDef
	for _, proto := range protos {
		r := &ruleDef{}
		r.add(daddrText(d.Prefix), daddr(d.Prefix)...)
		if proto != "" {
			num := byte(unix.IPPROTO_TCP)
			if proto == "udp" {
				num = unix.IPPROTO_UDP
			}
			switch ports := slices.Sorted(slices.Values(d.Ports)); {
			case len(ports) == 0:
				r.add("meta l4proto "+proto, l4proto(num)...)
			case len(ports) == 1:
				r.add(fmt.Sprintf("%s dport %d", proto, ports[0]), append(l4proto(num), thDport(),
					&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(ports[0])})...)
			default:
				anon := newSet(&nftables.Set{Anonymous: true, Constant: true, KeyType: nftables.TypeInetService},
					portElems(slices.Compact(ports)))
				look := &expr.Lookup{SourceRegister: reg1}
				r.anon, r.anonLookup = anon, look
				r.add(fmt.Sprintf("%s dport { %s }", proto, strings.Join(anon.texts, ", ")),
					append(l4proto(num), thDport(), look)...)
			}
		}
		out = append(out, r.add("accept", accept))
	}
	return out
}

// daddrText prints what daddr matches, as nft lists it.
func daddrText(p netip.Prefix) string {
	p = p.Masked()
	fam := "ip"
	if p.Addr().Is6() {
		fam = "ip6"
	}
	switch p.Bits() {
	case 0:
		return "meta nfproto ipv" + map[string]string{"ip": "4", "ip6": "6"}[fam]
	case p.Addr().BitLen():
		return fam + " daddr " + p.Addr().String()
	}
	return fam + " daddr " + p.String()
}

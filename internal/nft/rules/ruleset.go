package rules

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
	SetIntercept    = "intercept_ports"
	setListener     = "listener_ports"
	mapTProxy       = "tproxy_ports"
	setSlots        = "tenant_slots"
	mapUIDs         = "uids"
	ChainOutput     = "output"
	ChainPrerouting = "prerouting"
	ChainInput      = "input"
	ChainDeny       = "deny"
	ChainEscape     = "postrouting"
)

// CgroupMapName is the verdict map of the cgroups at one level.
func CgroupMapName(level int) string { return fmt.Sprintf("cgroup_l%d", level) }

// TenantChainName is a local tenant's chain, which package nft's
// InstalledSlots reads back: the slot is in the name, the tenant's name in
// its rule comment.
func TenantChainName(slot uint32) string { return fmt.Sprintf("tenant_%d", slot) }

// Ruleset is the whole table as data: the same value is turned into one
// netlink batch (package nft's program) and into nft syntax (Render), so
// the two agree by construction; a kernel test checks the printing
// details. Only the package's builders make one; package nft reads it.
type Ruleset struct {
	Family nftables.TableFamily // 0: inet
	Sets   []*SetDef
	Chains []*ChainDef
}

// SetDef is a named set or map with its elements.
type SetDef struct {
	Set   *nftables.Set
	Elems []nftables.SetElement
	texts []string // element texts in nft's (numeric) sort order
}

// ChainDef is a chain with its rules, in order.
type ChainDef struct {
	Chain  *nftables.Chain
	header string // "type ... hook ... priority ...; policy accept;" for base chains
	Rules  []*RuleDef
}

// RuleDef is one rule: its expressions, the words nft prints for them and
// its comment.
type RuleDef struct {
	Exprs   []expr.Any
	words   []string
	comment string
	Anon    *SetDef // anonymous set the rule looks up, created just before it
	// AnonLookup is the rule's lookup of anon; it learns the set's name
	// and batch id when the set is added.
	AnonLookup *expr.Lookup
}

func (r *RuleDef) add(text string, e ...expr.Any) *RuleDef {
	if text != "" {
		r.words = append(r.words, text)
	}
	r.Exprs = append(r.Exprs, e...)
	return r
}

// UserData carries the rule comment the way nft stores it.
func (r *RuleDef) UserData() []byte {
	if r.comment == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, r.comment)
}

func (r *RuleDef) text() string {
	s := strings.Join(r.words, " ")
	if r.comment != "" {
		s += ` comment "` + r.comment + `"`
	}
	return s
}

// Element is a map or set entry with its sort key for printing.
type Element struct {
	sortKey uint64
	Elem    nftables.SetElement
	Text    string // "" for an interval's end, which nft does not print
}

func newSet(s *nftables.Set, elems []Element) *SetDef {
	slices.SortFunc(elems, func(a, b Element) int { return cmp.Compare(a.sortKey, b.sortKey) })
	d := &SetDef{Set: s}
	for _, e := range elems {
		d.Elems = append(d.Elems, e.Elem)
		if e.Text != "" {
			d.texts = append(d.texts, e.Text)
		}
	}
	return d
}

func portElems(ports []uint16) []Element {
	var out []Element
	for _, p := range ports {
		out = append(out, Element{uint64(p), nftables.SetElement{Key: be16(p)}, fmt.Sprint(p)})
	}
	return out
}

func jump(slot uint32) *expr.Verdict {
	return &expr.Verdict{Kind: expr.VerdictJump, Chain: TenantChainName(slot)}
}

// sortedTenants returns the tenants ordered by slot, for stable output.
func sortedTenants(spec *nftspec.Spec) []nftspec.Tenant {
	ts := slices.Clone(spec.Tenants)
	slices.SortFunc(ts, func(a, b nftspec.Tenant) int { return cmp.Compare(a.Slot, b.Slot) })
	return ts
}

// CgroupElems returns, per level in use, the verdict-map entries for the
// cgroups that currently exist.
func CgroupElems(spec *nftspec.Spec, ids nftspec.CgroupIDs) map[int][]Element {
	out := map[int][]Element{}
	seen := map[uint64]bool{}
	add := func(path string, v *expr.Verdict, text string) {
		id, ok := ids[path]
		if !ok || seen[id] {
			return
		}
		seen[id] = true
		e := nftables.SetElement{Key: binaryutil.NativeEndian.PutUint64(id), VerdictData: v, Comment: path}
		l := nftspec.CgroupLevel(path)
		out[l] = append(out[l], Element{id, e, fmt.Sprintf("%d comment \"%s\" : %s", id, path, text)})
	}
	for _, t := range sortedTenants(spec) {
		for _, c := range t.Cgroups {
			add(c, jump(t.Slot), "jump "+TenantChainName(t.Slot))
		}
	}
	// A tenant cgroup below a guard matches at its own, deeper level first
	// (levels are looked up deepest first); anything else below the guard
	// is denied.
	for _, g := range spec.Guards {
		add(g, &expr.Verdict{Kind: expr.VerdictGoto, Chain: ChainDeny}, "goto "+ChainDeny)
	}
	return out
}

// Build turns a validated spec and the current cgroup ids into the
// table's contents.
func Build(spec *nftspec.Spec, ids nftspec.CgroupIDs) *Ruleset {
	table := &nftables.Table{Name: spec.Table, Family: nftables.TableFamilyINet}
	rs := &Ruleset{}
	tenants := sortedTenants(spec)

	var listenPorts []uint16
	var tproxy, slots []Element
	for _, t := range tenants {
		listenPorts = append(listenPorts, t.ListenerPort)
		slots = append(slots, Element{uint64(t.Slot), nftables.SetElement{Key: ne32(t.Slot)}, fmt.Sprintf("0x%08x", t.Slot)})
		tproxy = append(tproxy, Element{uint64(t.Slot),
			nftables.SetElement{Key: ne32(t.Slot), Val: be16(t.ListenerPort)},
			fmt.Sprintf("0x%08x : %d", t.Slot, t.ListenerPort)})
	}
	rs.Sets = append(rs.Sets,
		newSet(&nftables.Set{Table: table, Name: SetIntercept, KeyType: nftables.TypeInetService}, portElems(spec.InterceptPorts)),
		newSet(&nftables.Set{Table: table, Name: setListener, KeyType: nftables.TypeInetService}, portElems(listenPorts)),
		newSet(&nftables.Set{Table: table, Name: setSlots, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian}, slots),
		newSet(&nftables.Set{Table: table, Name: mapTProxy, IsMap: true, KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian,
			DataType: nftables.TypeInetService}, tproxy))
	cg := CgroupElems(spec, ids)
	for _, l := range spec.Levels() {
		rs.Sets = append(rs.Sets, newSet(&nftables.Set{Table: table, Name: CgroupMapName(l), IsMap: true,
			KeyType: nftables.TypeCGroupV2, KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict}, cg[l]))
	}
	if spec.HasUIDs() {
		rs.Sets = append(rs.Sets, uidMap(table, uidElems(tenants)))
	}

	rs.Chains = append(rs.Chains, outputChain(spec, table), escapeChain(spec, table), preroutingChain(spec, table),
		inputChain(table), denyChain(table))
	for _, t := range tenants {
		rs.Chains = append(rs.Chains, tenantChain(spec, table, &t))
	}
	addForwarded(rs, table, tenants, spec.CtMarkMask)
	addDNS(rs, spec, table, tenants)
	addLabelled(rs, spec, table, tenants)
	return rs
}

func baseChain(table *nftables.Table, name string, typ nftables.ChainType, hook *nftables.ChainHook,
	prio *nftables.ChainPriority, header string) *ChainDef {
	policy := nftables.ChainPolicyAccept
	return &ChainDef{
		Chain:  &nftables.Chain{Table: table, Name: name, Type: typ, Hooknum: hook, Priority: prio, Policy: &policy},
		header: header + " policy accept;",
	}
}

// outputChain classifies locally generated packets: bypass, intercepted
// flows already running, replies, then tenant lookup (cgroups deepest level
// first, then uid) which jumps to the tenant's chain.
func outputChain(spec *nftspec.Spec, table *nftables.Table) *ChainDef {
	c := baseChain(table, ChainOutput, nftables.ChainTypeRoute, nftables.ChainHookOutput,
		nftables.ChainPriorityMangle, "type route hook output priority mangle;")
	bypass := &RuleDef{}
	bypass.add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", spec.MarkMask, spec.BypassMark),
		maskedCmp(metaMark(), spec.MarkMask, spec.BypassMark, expr.CmpOpEq)...)
	bypass.add("accept", accept)

	running := runningRule(spec, false)
	// No "ct state established accept" before the tenant lookup: conntrack
	// matches a packet by its tuple, not its socket, so a tenant that binds
	// the source port of another socket's live flow (e.g. the resolver's)
	// would ride that flow's entry out. Tenants are classified by socket
	// first; everything else falls through to the policy (accept).
	c.Rules = append(c.Rules, bypass, running)

	for _, l := range spec.Levels() {
		r := &RuleDef{}
		r.add(fmt.Sprintf("socket cgroupv2 level %d", l), &expr.Socket{Key: expr.SocketKeyCgroupv2, Level: uint32(l), Register: reg1})
		r.add("vmap @"+CgroupMapName(l), vmap(CgroupMapName(l), 0))
		c.Rules = append(c.Rules, r)
	}
	if spec.HasUIDs() {
		r := &RuleDef{}
		r.add("meta skuid vmap @"+mapUIDs, uidLookup()...)
		c.Rules = append(c.Rules, r)
	}
	return c
}

// runningRule keeps an intercepted TCP flow going to lo, also for the
// packets a closed tenant socket's TIME_WAIT sends (they match no socket
// rule). Only TCP, and only ct marks that are slots of ours: another
// tool's ct mark (e.g. wg-quick's) never pulls its flows into the
// listener. With tenant DNS intercepted, not port 53: those flows carry a
// tenant's slot too, but are redirected to its DNS listener (dns.go).
func runningRule(spec *nftspec.Spec, dns bool) *RuleDef {
	running := &RuleDef{}
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
func preroutingChain(spec *nftspec.Spec, table *nftables.Table) *ChainDef {
	c := baseChain(table, ChainPrerouting, nftables.ChainTypeFilter, nftables.ChainHookPrerouting,
		nftables.ChainPriorityMangle, "type filter hook prerouting priority mangle;")
	for _, v6 := range []bool{false, true} {
		fam, addr, text := byte(unix.NFPROTO_IPV4), []byte{127, 0, 0, 1}, "tproxy ip to 127.0.0.1"
		if v6 {
			fam, addr, text = unix.NFPROTO_IPV6, make([]byte, 16), "tproxy ip6 to [::1]"
			addr[15] = 1
		}
		r := &RuleDef{}
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
		c.Rules = append(c.Rules, r)
	}
	// No listener for the slot (daemon gone, or no map entry): without this
	// the packet would be delivered locally to the original destination,
	// whose reset cannot be routed from a non-local source, and the client
	// would hang until its timeout. Reset it here instead: fail closed, fast.
	miss := &RuleDef{}
	miss.add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", spec.MarkMask, spec.InterceptMark),
		maskedCmp(metaMark(), spec.MarkMask, spec.InterceptMark, expr.CmpOpEq)...)
	miss.add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...)
	miss.add("reject with tcp reset", rejectTCPReset())
	c.Rules = append(c.Rules, miss)
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
func inputChain(table *nftables.Table) *ChainDef {
	c := baseChain(table, ChainInput, nftables.ChainTypeFilter, nftables.ChainHookInput,
		nftables.ChainPriorityFilter, "type filter hook input priority filter;")
	dport := func() *RuleDef {
		r := &RuleDef{}
		r.add("tcp dport @"+setListener, append(l4proto(unix.IPPROTO_TCP), thDport(), lookup(setListener, 0))...)
		return r
	}
	c.Rules = append(c.Rules,
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
func escapeChain(spec *nftspec.Spec, table *nftables.Table) *ChainDef {
	c := baseChain(table, ChainEscape, nftables.ChainTypeFilter, nftables.ChainHookPostrouting,
		nftables.ChainPriorityFilter, "type filter hook postrouting priority filter;")
	r := &RuleDef{}
	r.add(fmt.Sprintf("meta mark & 0x%08x == 0x%08x", spec.MarkMask, spec.InterceptMark),
		maskedCmp(metaMark(), spec.MarkMask, spec.InterceptMark, expr.CmpOpEq)...)
	r.add(`oifname != "lo"`, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ifname("lo")})
	r.add("drop", &expr.Verdict{Kind: expr.VerdictDrop})
	c.Rules = append(c.Rules, r)
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
func tenantChain(spec *nftspec.Spec, table *nftables.Table, t *nftspec.Tenant) *ChainDef {
	c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: TenantChainName(t.Slot)}}
	// Replies of TCP connections the tenant serves. TCP window tracking
	// makes another socket's packets on the same tuple invalid, so this
	// cannot carry a reused flow; UDP gets no such pass.
	replies := (&RuleDef{}).add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...).
		add("ct direction reply", ctDirReply()...).add("accept", accept)
	c.Rules = append(c.Rules, replies)
	icpt := &RuleDef{comment: t.Name}
	icpt.add("tcp dport @"+SetIntercept, append(l4proto(unix.IPPROTO_TCP), thDport(), lookup(SetIntercept, 0))...)
	icpt.add(markSetText("ct", spec.CtMarkMask, t.Slot), setBits(true, spec.CtMarkMask, t.Slot)...)
	icpt.add(markSetText("meta", spec.MarkMask, spec.InterceptMark), setBits(false, spec.MarkMask, spec.InterceptMark)...)
	icpt.add("accept", accept)
	c.Rules = append(c.Rules, icpt)
	return finishTenant(c, t)
}

// denyChain rejects so that clients fail fast: TCP with a reset, anything
// else with ICMP administratively prohibited. It is shared by all tenants
// (one rule per tenant fewer keeps large applies fast).
func denyChain(table *nftables.Table) *ChainDef {
	c := &ChainDef{Chain: &nftables.Chain{Table: table, Name: ChainDeny}}
	c.Rules = append(c.Rules,
		(&RuleDef{}).add("meta l4proto tcp", l4proto(unix.IPPROTO_TCP)...).add("reject with tcp reset", rejectTCPReset()),
		(&RuleDef{}).add("reject with icmpx admin-prohibited", rejectAdminProhibited()))
	return c
}

// directRules allows one allow_direct entry: one rule per protocol when
// ports are given (so "tcp dport" reads naturally), otherwise one rule.
func directRules(d nftspec.Direct) []*RuleDef {
	protos := []string{d.Proto}
	if d.Proto == "" && len(d.Ports) > 0 {
		protos = []string{"tcp", "udp"}
	}
	var out []*RuleDef
	for _, proto := range protos {
		r := &RuleDef{}
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
				r.Anon, r.AnonLookup = anon, look
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

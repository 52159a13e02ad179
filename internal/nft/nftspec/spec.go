package nftspec

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// Defaults for Spec. The marks live in bits 0x3000 of the packet mark, which
// Docker (none), kube-proxy (0x4000, 0x8000), Calico (0xffff0000), Cilium
// (0x0f00 and the upper 16 bits) and Tailscale (0xff0000) leave alone; the
// conntrack-mark slot uses the low 12 bits of the ct mark, which none of them
// use. Table 1515 and rule priority 1515 are unused by all of them
// (Tailscale: table 52, priorities 5210-5270; main/local/default: 254/255/253).
const (
	DefaultTable         = "egressfw"
	DefaultMarkMask      = 0x3000
	DefaultInterceptMark = 0x2000
	DefaultBypassMark    = 0x1000
	DefaultCtMarkMask    = 0x0fff
	DefaultRouteTable    = 1515
	DefaultRulePriority  = 1515
	// Container identity (package rules, containers.go): a labelled
	// container's tenant slot rides in packet-mark bits 0xff, which none
	// of the tools above use on forwarded packets, and its flow records it
	// in conntrack-mark bits 0xff0000, which none of them use in the ct
	// mark (wg-quick's 0xca6c stays clear of them).
	DefaultContainerMarkMask = 0x000000ff
	DefaultContainerCtMask   = 0x00ff0000
)

// Spec is the complete firewall package nft's Manager installs. It carries
// no policy: the daemon converts its configuration into a Spec.
type Spec struct {
	Table          string   // nftables table name in family inet
	InterceptPorts []uint16 // TCP destination ports that are intercepted, e.g. 80, 443

	MarkMask      uint32 // packet-mark bits owned by egressfw
	InterceptMark uint32 // mark (within MarkMask) that routes a packet to lo
	BypassMark    uint32 // mark (within MarkMask) of egressfw's own upstream sockets
	CtMarkMask    uint32 // conntrack-mark bits holding the tenant slot (contiguous, from bit 0 up)

	RouteTable   int // policy-routing table holding only the local default routes
	RulePriority int // priority of the fwmark ip rules

	Tenants []Tenant

	// Containers turns on container identity (package rules,
	// containers.go): a table of family bridge, of the same name, binds
	// each container the caller identifies (Manager.SetContainers) to its
	// bridge port, and marks the packets of a labelled tenant's containers
	// with the tenant's slot.
	Containers bool
	// ContainerMarkMask holds a labelled container's tenant slot in the
	// packet mark, from the bridge table to the inet table's rules;
	// ContainerCtMask records it in the conntrack mark of the flow the
	// container opened. Both are contiguous, of the same width, and
	// used only with Containers or a labelled tenant.
	ContainerMarkMask uint32
	ContainerCtMask   uint32

	// Guards are cgroup subtrees (relative to the cgroup2 root) that hold
	// tenants only. A socket below a guard that matches no tenant cgroup is
	// denied all new egress. Because the kernel matches cgroups by id, a
	// tenant cgroup re-created while no one updates the maps (egressfw
	// down) has an id the rules do not know; the guard keeps it blocked.
	Guards []string
}

// Tenant is one matched population of local processes.
type Tenant struct {
	Name         string // shown in a rule comment; letters, digits and any of -_.:@/
	Slot         uint32 // nonzero, fits CtMarkMask; carried in the conntrack mark
	ListenerPort uint16 // port of this tenant's transparent listener on 127.0.0.1 and ::1
	Report       bool   // observe only: count and accept what would be rejected

	Cgroups []string // cgroup v2 paths relative to the cgroup2 root
	UIDs    []uint32 // owning uids of sockets
	// UIDRanges are further owning uids, by range (sub-uids); they must
	// not overlap another tenant's uids or ranges.
	UIDRanges   []UIDRange
	AllowDirect []Direct // egress that bypasses the proxy

	// Interfaces are ingress interface names of forwarded traffic (a
	// trailing "*" matches a prefix): every packet arriving on one is this
	// tenant's, and, if Sources is set, dropped unless its source is in
	// Sources.
	Interfaces []string
	// Sources are the tenant's forwarded source ranges. Without
	// Interfaces they alone name the tenant, after a strict reverse-path
	// check that drops a packet whose source would not be routed back out
	// of the interface it came in on.
	Sources []netip.Prefix
	// Labelled makes the tenant a container tenant: the containers that
	// SetContainers gives this tenant's slot are its members, wherever
	// they are attached (also on a bridge an interface tenant covers).
	// Needs Spec.Containers, and a slot that fits ContainerMarkMask.
	Labelled bool

	// DNS says where the tenant's DNS goes (package rules, dns.go):
	// DNSIntercept sends every UDP and TCP packet to port 53 to its DNS
	// listener on DNSPort (127.0.0.1 and ::1 for local traffic, the
	// ingress interface's address for forwarded traffic); DNSDirect (the
	// zero value) leaves port 53 to AllowDirect.
	DNS     DNSMode
	DNSPort uint16
}

// Forwarded reports whether the tenant has forwarded traffic.
func (t *Tenant) Forwarded() bool { return len(t.Interfaces) > 0 || len(t.Sources) > 0 || t.Labelled }

// Direct is egress a tenant may make without the proxy.
type Direct struct {
	Prefix netip.Prefix
	Ports  []uint16 // empty: all ports (and all protocols if Proto is "")
	Proto  string   // "tcp", "udp", or "" for both
}

// DefaultSpec returns a Spec with the default table, marks, route table and
// rule priority, intercepting TCP 80 and 443, and no tenants.
func DefaultSpec() Spec {
	return Spec{
		Table:          DefaultTable,
		InterceptPorts: []uint16{80, 443},
		MarkMask:       DefaultMarkMask,
		InterceptMark:  DefaultInterceptMark,
		BypassMark:     DefaultBypassMark,
		CtMarkMask:     DefaultCtMarkMask,
		RouteTable:     DefaultRouteTable,
		RulePriority:   DefaultRulePriority,

		ContainerMarkMask: DefaultContainerMarkMask,
		ContainerCtMask:   DefaultContainerCtMask,
	}
}

// CgroupIDs maps cgroup paths (as in Tenant.Cgroups and Spec.Guards) to
// their current cgroup ids. Paths that do not exist are simply absent.
type CgroupIDs map[string]uint64

// cleanCgroup reports whether p is a clean path below the cgroup2 root, as
// the caller must give it (package cgroup's Clean): no leading or trailing
// '/', no empty, "." or ".." component, not the root itself.
func cleanCgroup(p string) bool {
	return p != "" && path.Clean("/"+p) == "/"+p
}

// CgroupLevel is the number of components of a cleaned cgroup path, which
// is the level `socket cgroupv2 level` compares it at.
func CgroupLevel(clean string) int {
	return strings.Count(clean, "/") + 1
}

// Validate reports the first inconsistency that would make the ruleset
// wrong or unloadable.
func (s *Spec) Validate() error {
	if err := s.validateGlobal(); err != nil {
		return err
	}
	slots := map[uint32]string{}
	ports := map[uint16]string{}
	cgroups := map[string]string{}
	for i := range s.Tenants {
		t := &s.Tenants[i]
		if err := s.validateTenant(t); err != nil {
			return fmt.Errorf("tenant %q: %w", t.Name, err)
		}
		if other, ok := slots[t.Slot]; ok {
			return fmt.Errorf("tenant %q: slot %d already used by %q", t.Name, t.Slot, other)
		}
		slots[t.Slot] = t.Name
		if other, ok := ports[t.ListenerPort]; ok {
			return fmt.Errorf("tenant %q: listener port %d already used by %q", t.Name, t.ListenerPort, other)
		}
		ports[t.ListenerPort] = t.Name
		for _, c := range t.Cgroups {
			if other, ok := cgroups[c]; ok {
				return fmt.Errorf("tenant %q: cgroup %q already used by %q", t.Name, c, other)
			}
			cgroups[c] = t.Name
		}
	}
	if err := s.validateUIDs(); err != nil {
		return err
	}
	if err := s.validateContainers(); err != nil {
		return err
	}
	if err := s.validateDNS(); err != nil {
		return err
	}
	return s.validateGuards(cgroups)
}

func (s *Spec) validateGlobal() error {
	switch {
	case !tableName(s.Table):
		return fmt.Errorf("table name %q: want a letter, then up to 63 letters, digits or any of -_", s.Table)
	case len(s.InterceptPorts) == 0:
		return fmt.Errorf("no intercept ports")
	case slices.Contains(s.InterceptPorts, 0):
		return fmt.Errorf("intercept port 0")
	case s.MarkMask == 0:
		return fmt.Errorf("mark mask is 0")
	case s.InterceptMark == 0 || s.InterceptMark&^s.MarkMask != 0:
		return fmt.Errorf("intercept mark %#x must be nonzero and inside mark mask %#x", s.InterceptMark, s.MarkMask)
	case s.BypassMark == 0 || s.BypassMark&^s.MarkMask != 0:
		return fmt.Errorf("bypass mark %#x must be nonzero and inside mark mask %#x", s.BypassMark, s.MarkMask)
	case s.BypassMark == s.InterceptMark:
		return fmt.Errorf("bypass mark and intercept mark are both %#x", s.BypassMark)
	case s.CtMarkMask == 0 || s.CtMarkMask&(s.CtMarkMask+1) != 0:
		return fmt.Errorf("ct mark mask %#x must be contiguous low bits (like 0xfff)", s.CtMarkMask)
	case s.RouteTable <= 0 || s.RouteTable >= 253 && s.RouteTable <= 255 || s.RouteTable >= 1<<31:
		return fmt.Errorf("route table %d is reserved or out of range", s.RouteTable)
	case s.RulePriority <= 0 || s.RulePriority >= 32766:
		return fmt.Errorf("rule priority %d: want 1..32765 (before the main table)", s.RulePriority)
	}
	return nil
}

func (s *Spec) validateTenant(t *Tenant) error {
	switch {
	case t.Name == "" || len(t.Name) > 64 || !safeName(t.Name):
		return fmt.Errorf("name %q: want 1-64 letters, digits or any of -_.:@/ characters", t.Name)
	case t.Slot == 0 || t.Slot&^s.CtMarkMask != 0:
		return fmt.Errorf("slot %d must be nonzero and fit ct mark mask %#x", t.Slot, s.CtMarkMask)
	case t.ListenerPort == 0 || slices.Contains(s.InterceptPorts, t.ListenerPort):
		return fmt.Errorf("listener port %d is 0 or an intercept port", t.ListenerPort)
	}
	for _, c := range t.Cgroups {
		if !cleanCgroup(c) {
			return fmt.Errorf("cgroup %q: want a clean path below the cgroup2 root (no leading or trailing \"/\", no empty, \".\" or \"..\" component)", c)
		}
		if strings.ContainsFunc(c, func(r rune) bool { return r < ' ' || r == '"' || r == 0x7f }) {
			return fmt.Errorf("cgroup %q: contains a quote or control character", c)
		}
	}
	if err := validateForwarded(t); err != nil {
		return err
	}
	for _, d := range t.AllowDirect {
		if !d.Prefix.IsValid() || d.Prefix.Addr().Is4In6() {
			return fmt.Errorf("allow_direct prefix %v is invalid or IPv4-mapped", d.Prefix)
		}
		if d.Proto != "" && d.Proto != "tcp" && d.Proto != "udp" {
			return fmt.Errorf("allow_direct proto %q: want tcp, udp or empty", d.Proto)
		}
		if slices.Contains(d.Ports, 0) {
			return fmt.Errorf("allow_direct port 0")
		}
	}
	return nil
}

// tableName accepts identifiers nft prints without quotes.
func tableName(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	return safeName(s) && !strings.ContainsAny(s, ".:@/")
}

// safeName accepts the characters that need no quoting or escaping in nft
// syntax and rule comments.
func safeName(s string) bool {
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:@/", r)
		if !ok {
			return false
		}
	}
	return true
}

// Levels returns the cgroup levels used by any tenant, deepest first: a
// socket in a nested cgroup matches the most specific tenant.
func (s *Spec) Levels() []int {
	var out []int
	for _, c := range s.CgroupPaths() {
		if l := CgroupLevel(c); !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// CgroupPaths lists every cgroup the maps key on, tenants' and guards'.
func (s *Spec) CgroupPaths() []string {
	var out []string
	for _, t := range s.Tenants {
		out = append(out, t.Cgroups...)
	}
	return append(out, s.Guards...)
}

// validateGuards checks guard paths; a guard may contain tenants but must
// not be one.
func (s *Spec) validateGuards(tenantCgroups map[string]string) error {
	for _, g := range s.Guards {
		if !cleanCgroup(g) || strings.ContainsFunc(g, func(r rune) bool { return r < ' ' || r == '"' || r == 0x7f }) {
			return fmt.Errorf("guard cgroup %q: want a clean path below the cgroup2 root, without quotes or control characters", g)
		}
		if t, ok := tenantCgroups[g]; ok {
			return fmt.Errorf("guard cgroup %q is also a cgroup of tenant %q", g, t)
		}
	}
	return nil
}

// HasUIDs reports whether any tenant is matched by uid.
func (s *Spec) HasUIDs() bool {
	for _, t := range s.Tenants {
		if len(t.UIDs) > 0 || len(t.UIDRanges) > 0 {
			return true
		}
	}
	return false
}

// validateForwarded checks a tenant's interfaces and source ranges.
func validateForwarded(t *Tenant) error {
	for _, n := range t.Interfaces {
		base, _ := strings.CutSuffix(n, "*")
		if base == "" || len(base) > 15 || base == "lo" || !safeName(base) || strings.Contains(base, "/") {
			return fmt.Errorf("interface %q: want 1-15 of letters, digits or -_.@, optionally followed by '*', not lo", n)
		}
	}
	for _, p := range t.Sources {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return fmt.Errorf("source prefix %v is invalid, zoned or IPv4-mapped", p)
		}
	}
	return nil
}

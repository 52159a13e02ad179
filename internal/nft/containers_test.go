package nft

import (
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// elementsOf lists the elements of a set of the bridge table as nft
// prints them (ports by name), whitespace normalised.
func elementsOf(t *testing.T, ns *testNetns, set string) string {
	t.Helper()
	kind := "set"
	if set == rules.MapID4 || set == rules.MapID6 {
		kind = "map"
	}
	m := regexp.MustCompile(`(?s)elements = \{(.*?)\}`).FindStringSubmatch(ns.nft(t, "list", kind, "bridge", "egressfw", set))
	if m == nil {
		return ""
	}
	return normalize(m[1])
}

// generation is the ruleset generation: one per committed transaction.
func generation(t *testing.T, m *Manager) uint32 {
	t.Helper()
	g, err := m.b.Generation()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSetContainers follows identities through SetContainers and Apply:
// each SetContainers is one transaction of element changes that leaves the
// tables' objects as they were; a relabel moves a binding between tenants,
// an address two ports claim is usable from neither, a reload keeps the
// bindings and a removed labelled tenant's containers lose its label.
func TestSetContainers(t *testing.T) {
	tp := newCtrTopo(t, true)
	ns, m := tp.host, tp.m
	a, b := tp.container(t, "pa", 10), tp.container(t, "pb", 20)
	before := handlesOf(t, ns, "bridge")
	steps := []struct {
		name  string
		cs    []nftspec.Container
		check map[string]string // set: elements
	}{
		{"two containers", []nftspec.Container{a.identity(2), b.identity(0)}, map[string]string{
			rules.SetPorts:   `"pa", "pb"`,
			rules.SetPort4:   `"pa" . 172.18.0.10, "pb" . 172.18.0.20`,
			rules.SetPortMAC: `"pa" . 02:00:00:00:00:0a, "pb" . 02:00:00:00:00:14`,
			rules.SetOwned6:  `fd00:18::a, fd00:18::14`,
			rules.MapID4:     `"pa" . 172.18.0.10 : goto label_2`,
			rules.MapID6:     `"pa" . fd00:18::a : goto label_2`,
		}},
		{"relabelled", []nftspec.Container{a.identity(0), b.identity(2)}, map[string]string{
			rules.MapID4: `"pb" . 172.18.0.20 : goto label_2`,
		}},
		{"an address claimed twice", []nftspec.Container{a.identity(0), b.identity(2),
			{Port: 999, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 99}, Addrs: []netip.Addr{b.ip4}}}, map[string]string{
			rules.SetPort4:  `"pa" . 172.18.0.10`,
			rules.SetOwned4: `172.18.0.10, 172.18.0.20`,
			rules.MapID4:    ``,
			rules.MapID6:    `"pb" . fd00:18::14 : goto label_2`,
		}},
		{"one left", []nftspec.Container{b.identity(2)}, map[string]string{
			rules.SetPorts: `"pb"`, rules.SetOwned4: `172.18.0.20`, rules.SetPort6: `"pb" . fd00:18::14`,
		}},
	}
	for _, s := range steps {
		g := generation(t, m)
		if err := m.SetContainers(s.cs); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if now := generation(t, m); now != g+1 {
			t.Errorf("%s: %d transactions, want 1", s.name, now-g)
		}
		for set, want := range s.check {
			if got := elementsOf(t, ns, set); got != want {
				t.Errorf("%s: %s = {%s}, want {%s}", s.name, set, got, want)
			}
		}
	}
	if after := handlesOf(t, ns, "bridge"); !equalMaps(before, after) {
		t.Errorf("SetContainers replaced objects of the bridge table: %v, then %v", before, after)
	}
	// a reload keeps the bindings, in place
	if err := m.Apply(tp.spec, nil); err != nil {
		t.Fatal(err)
	}
	if got := elementsOf(t, ns, rules.MapID4); got != `"pb" . 172.18.0.20 : goto label_2` {
		t.Errorf("after a reload: %s = {%s}", rules.MapID4, got)
	}
	if after := handlesOf(t, ns, "bridge"); !equalMaps(before, after) {
		t.Errorf("a reload replaced objects of the bridge table: %v, then %v", before, after)
	}
	// the labelled tenant is gone: its containers are bound, unlabelled
	unlabelled := tp.spec
	unlabelled.Tenants = unlabelled.Tenants[:1]
	if err := m.Apply(unlabelled, nil); err != nil {
		t.Fatal(err)
	}
	if got, ports := elementsOf(t, ns, rules.MapID4), elementsOf(t, ns, rules.SetPorts); got != "" || ports != `"pb"` {
		t.Errorf("labelled tenant removed: %s = {%s}, %s = {%s}; want {}, {\"pb\"}", rules.MapID4, got, rules.SetPorts, ports)
	}
	if strings.Contains(ns.nft(t, "list", "table", "bridge", "egressfw"), "label_2") {
		t.Error("the removed tenant's label chain is still there")
	}
	// container identity off: the bridge table goes
	off := unlabelled
	off.Containers = false
	if err := m.Apply(off, nil); err != nil {
		t.Fatal(err)
	}
	if out := ns.nft(t, "list", "tables"); strings.Contains(out, "bridge egressfw") {
		t.Errorf("bridge table left with Containers off: %s", out)
	}
	if err := m.SetContainers(nil); err == nil {
		t.Error("SetContainers without container identity succeeded")
	}
}

// TestSetContainersRejects: bad identities are refused whole, and the
// bindings stay.
func TestSetContainersRejects(t *testing.T) {
	tp := newCtrTopo(t, false)
	a := tp.container(t, "pa", 10)
	if err := tp.m.SetContainers([]nftspec.Container{a.identity(2)}); err != nil {
		t.Fatal(err)
	}
	mac := a.mac
	for _, tc := range []struct {
		name string
		c    []nftspec.Container
		want string
	}{
		{"no port", []nftspec.Container{{Port: 0, MAC: mac}}, "want an ifindex"},
		{"port twice", []nftspec.Container{{Port: 5, MAC: mac}, {Port: 5, MAC: mac}}, "given twice"},
		{"short MAC", []nftspec.Container{{Port: 5, MAC: mac[:4]}}, "not an Ethernet address"},
		{"link-local address", []nftspec.Container{{Port: 5, MAC: mac, Addrs: []netip.Addr{netip.MustParseAddr("fe80::1")}}}, "unicast"},
		{"mapped address", []nftspec.Container{{Port: 5, MAC: mac, Addrs: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}}}, "unicast"},
	} {
		if err := tp.m.SetContainers(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: SetContainers = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if got := elementsOf(t, tp.host, rules.SetPorts); got != `"pa"` {
		t.Errorf("after refused updates: ports = {%s}, want {\"pa\"}", got)
	}
}

// TestContainerFlowsForgotten: SetContainers deletes the conntrack entries
// of the addresses it unbinds, and no others. (Unlabelled containers: the
// interface tenant lets their datagrams out, so their flows are confirmed.)
func TestContainerFlowsForgotten(t *testing.T) {
	tp := newCtrTopo(t, true)
	a, b := tp.container(t, "pa", 10), tp.container(t, "pb", 20)
	if err := tp.m.SetContainers([]nftspec.Container{a.identity(0), b.identity(0)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*ctr{a, b} {
		dst := netip.MustParseAddr("198.51.100.10")
		typ, pkt := ipPacket(c.ip4, dst, unix.IPPROTO_UDP, l4(unix.IPPROTO_UDP, c.ip4, dst))
		sendFrames(t, c.ns, "eth0", frame(tp.brMAC, c.mac, typ, pkt))
	}
	time.Sleep(100 * time.Millisecond)
	if n := flowsFrom(t, tp.host, a.ip4); n == 0 {
		t.Fatal("no conntrack entry for A's datagram")
	}
	if err := tp.m.SetContainers([]nftspec.Container{b.identity(0)}); err != nil {
		t.Fatal(err)
	}
	if n := flowsFrom(t, tp.host, a.ip4); n != 0 {
		t.Errorf("%d conntrack entries from A's address after it was unbound, want 0", n)
	}
	if n := flowsFrom(t, tp.host, b.ip4); n == 0 {
		t.Error("B's conntrack entry went too")
	}
}

// flowsFrom counts the conntrack entries in ns whose original source is a.
func flowsFrom(t *testing.T, ns *testNetns, a netip.Addr) int {
	t.Helper()
	var flows []*netlink.ConntrackFlow
	var err error
	ns.Do(t, func() { flows, err = netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET) })
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range flows {
		if f.Forward.SrcIP.Equal(a.AsSlice()) {
			n++
		}
	}
	return n
}

// handlesOf maps each object of table <family> egressfw to its handle.
func handlesOf(t *testing.T, ns *testNetns, family string) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(`(?m)^\t?(table|set|map|chain) (?:` + family + ` )?(\S+) \{ # handle (\d+)$`)
	for _, m := range re.FindAllStringSubmatch(ns.nft(t, "-a", "list", "table", family, "egressfw"), -1) {
		out[m[1]+" "+m[2]] = m[3]
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestApplyContainers: a new Manager (egressfw restarted) applies its
// first ruleset with the containers the Engine API lists: the bindings of
// the previous run are replaced in one transaction, never absent.
func TestApplyContainers(t *testing.T) {
	tp := newCtrTopo(t, true)
	a, b := tp.container(t, "pa", 10), tp.container(t, "pb", 20)
	if err := tp.m.SetContainers([]nftspec.Container{a.identity(2), b.identity(0)}); err != nil {
		t.Fatal(err)
	}
	before := handlesOf(t, tp.host, "bridge")
	m := tp.host.manager(t) // the restarted egressfw
	g := generation(t, m)
	if err := m.ApplyContainers(tp.spec, nil, []nftspec.Container{a.identity(2)}, nil); err != nil {
		t.Fatal(err)
	}
	if now := generation(t, m); now != g+1 {
		t.Errorf("%d transactions, want 1", now-g)
	}
	if got := elementsOf(t, tp.host, rules.MapID4); got != `"pa" . 172.18.0.10 : goto label_2` {
		t.Errorf("%s = {%s}", rules.MapID4, got)
	}
	if got := elementsOf(t, tp.host, rules.SetPorts); got != `"pa"` {
		t.Errorf("ports = {%s}, want {\"pa\"}", got)
	}
	if after := handlesOf(t, tp.host, "bridge"); !equalMaps(before, after) {
		t.Errorf("the restart replaced objects of the bridge table: %v, then %v", before, after)
	}
	off := tp.spec
	off.Containers = false
	off.Tenants = off.Tenants[:1]
	if err := m.ApplyContainers(off, nil, nil, nil); err == nil {
		t.Error("ApplyContainers without container identity succeeded")
	}
}

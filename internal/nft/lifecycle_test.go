package nft

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/egressfw/egressfw/internal/netnstest"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
)

// foreignRuleset stands for other owners: Docker (ip nat, ip filter), an
// iptables-nft style mangle table, an inet table with sets and maps, and a
// table named like ours in another family.
const foreignRuleset = `
table ip nat {
	chain PREROUTING { type nat hook prerouting priority dstnat; policy accept; fib daddr type local counter jump DOCKER; }
	chain OUTPUT { type nat hook output priority -100; policy accept; ip daddr != 127.0.0.0/8 fib daddr type local counter jump DOCKER; }
	chain POSTROUTING { type nat hook postrouting priority srcnat; policy accept; ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade; }
	chain DOCKER { iifname "docker0" counter return; }
}
table ip filter {
	chain FORWARD { type filter hook forward priority filter; policy drop; counter jump DOCKER-USER; }
	chain DOCKER-USER { counter return; }
}
table ip mangle {
	chain OUTPUT { type route hook output priority mangle; policy accept; meta mark & 0x4000 == 0x4000 counter; }
}
table inet other {
	set blocked { type ipv4_addr; flags interval; elements = { 203.0.113.0/24 }; }
	map ports { type inet_service : verdict; elements = { 22 : accept }; }
	chain output { type filter hook output priority 10; policy accept; ip daddr @blocked drop; tcp dport vmap @ports; }
}
table ip egressfw {
	chain keep { counter; }
}
`

var foreignTables = []string{"ip nat", "ip filter", "ip mangle", "inet other", "ip egressfw"}

func listForeign(t *testing.T, ns *testNetns) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tb := range foreignTables {
		out[tb] = ns.nft(t, append([]string{"list", "table"}, strings.Fields(tb)...)...)
	}
	return out
}

func TestForeignTablesUntouched(t *testing.T) {
	ns := newNetns(t, false)
	ns.nftScript(t, foreignRuleset)
	before := listForeign(t, ns)
	ruleset := ns.nft(t, "list", "ruleset")
	m := ns.manager(t)
	other := sampleSpec()
	other.Tenants = other.Tenants[:1]
	steps := []struct {
		name string
		do   func() error
	}{
		{"apply", func() error { return m.Apply(sampleSpec(), sampleIDs) }},
		{"re-apply", func() error { return m.Apply(other, nil) }},
		{"set cgroup ids", func() error { return m.SetCgroupIDs(sampleIDs) }},
		{"cleanup", func() error { return m.Cleanup(other) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for tb, text := range listForeign(t, ns) {
			if text != before[tb] {
				t.Errorf("after %s, table %s changed:\n%s\nwas:\n%s", s.name, tb, text, before[tb])
			}
		}
	}
	if got := ns.nft(t, "list", "ruleset"); got != ruleset {
		t.Errorf("ruleset after cleanup differs from before apply:\n%s", got)
	}
}

// replaceSpecs are two rulesets Apply alternates between: the second
// changes the other tenants, adds a tenant (a new chain and map entries)
// and a cgroup level (a new map and rule), while tenant "webhooks" (uid
// 4242, slot 2, port 15002) and the intercept ports stay as they are.
func replaceSpecs() (a, b nftspec.Spec, aIDs, bIDs nftspec.CgroupIDs) {
	a, b = sampleSpec(), sampleSpec()
	b.Tenants[0].AllowDirect = b.Tenants[0].AllowDirect[:1]
	b.Tenants[1].Report = false
	b.Tenants = append(b.Tenants, nftspec.Tenant{Name: "new", Slot: 3, ListenerPort: 15003, UIDs: []uint32{4343},
		Cgroups: []string{"new.slice/new-app.slice/x.service"}})
	bIDs = nftspec.CgroupIDs{"new.slice/new-app.slice/x.service": 1<<40 + 11}
	maps.Copy(bIDs, sampleIDs)
	return a, b, sampleIDs, bIDs
}

// withFillers adds n tenants that no re-apply changes (slots 100 on), so
// that Apply keeps their chains and flushes the others one by one instead
// of flushing the whole table (see flushRules).
func withFillers(spec nftspec.Spec, n int) nftspec.Spec {
	spec.Tenants = slices.Clone(spec.Tenants)
	for i := range n {
		slot := uint32(100 + i)
		spec.Tenants = append(spec.Tenants, nftspec.Tenant{Name: fmt.Sprintf("filler%d", i), Slot: slot,
			ListenerPort: uint16(16000 + i), UIDs: []uint32{50000 + slot}})
	}
	return spec
}

// TestAtomicReplace re-applies the table 200 times while a tenant that both
// rulesets treat alike keeps opening connections: every one must be
// intercepted. Two base chains on one hook during the commit (delete table +
// add table) would let a SYN through unmarked (timeout) or reset it, a map
// deleted under a running chain would reset it (see the package doc,
// Atomicity). Packets, not netlink dumps, are the judge: a dump is not
// consistent across a commit, the packet path is. The cases cover both
// ways Apply removes rules (whole table, chain by chain) and the tenant's
// chain being rewritten or kept.
func TestAtomicReplace(t *testing.T) {
	a, b, aIDs, bIDs := replaceSpecs()
	bSame := b // tenant "webhooks" keeps its allow_direct too
	bSame.Tenants = slices.Clone(b.Tenants)
	bSame.Tenants[0] = a.Tenants[0]
	tests := []struct {
		name string
		a, b nftspec.Spec
	}{
		{"table flushed", a, b},
		{"chains flushed, tenant's rewritten", withFillers(a, 10), withFillers(b, 10)},
		{"chains flushed, tenant's kept", withFillers(a, 10), withFillers(bSame, 10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t, true)
			m := ns.manager(t)
			if err := m.Apply(tc.a, aIDs); err != nil {
				t.Fatal(err)
			}
			listeners := transparentListen(t, ns, 15002)
			go func() { // drain: the test counts helper results, not accepts
				for range listeners {
				}
			}()
			const attempts = 150
			done := make(chan string, 1)
			go func() {
				done <- runClient(t, ns, client{fsuid: 4242}, "tcp",
					"192.0.2.10:80", fmt.Sprintf("x repeat=%d", attempts))
			}()
			applies := 0
			for ; applies < 200; applies++ {
				spec, ids := tc.a, aIDs
				if applies%2 == 0 {
					spec, ids = tc.b, bIDs
				}
				if err := m.Apply(spec, ids); err != nil {
					t.Fatal(err)
				}
			}
			res := <-done
			t.Logf("%d tenant connections during %d re-applies: %s", attempts, applies, res)
			if !strings.HasPrefix(res, "OK") {
				t.Fatalf("a tenant connection was not intercepted during re-applies: %s", res)
			}
		})
	}
}

func routingState(t *testing.T, ns *testNetns, spec nftspec.Spec) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(ns.Run(t, "ip", fam, "rule", "list"), "\n") {
			if strings.Contains(l, "lookup 1515") || strings.Contains(l, "lookup 1600") {
				b.WriteString(fam + " rule " + strings.TrimSpace(l) + "\n")
			}
		}
		for _, table := range []string{"1515", "1600"} {
			// A table that never existed is an error for ip(8); treat it as empty.
			out, _ := ns.Cmd("ip", fam, "route", "show", "table", table).Output()
			if r := strings.TrimSpace(string(out)); r != "" {
				b.WriteString(fam + " table " + table + ": " + r + "\n")
			}
		}
	}
	return b.String()
}

func TestRoutingAndCleanup(t *testing.T) {
	ns := newNetns(t, false)
	spec := sampleSpec()
	m := ns.manager(t)
	if err := m.Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(spec, nil); err != nil { // idempotent: no duplicate rules
		t.Fatal(err)
	}
	want := "-4 rule 1515:\tfrom all fwmark 0x2000/0x3000 lookup 1515\n" +
		"-4 table 1515: local default dev lo scope host\n" +
		"-6 rule 1515:\tfrom all fwmark 0x2000/0x3000 lookup 1515\n" +
		"-6 table 1515: local default dev lo metric 1024 pref medium\n"
	if got := routingState(t, ns, spec); got != want {
		t.Fatalf("routing after apply:\n%s\nwant:\n%s", got, want)
	}

	moved := spec
	moved.RouteTable, moved.RulePriority = 1600, 1600
	if err := m.Apply(moved, nil); err != nil {
		t.Fatal(err)
	}
	if got := routingState(t, ns, spec); strings.Contains(got, "1515") || !strings.Contains(got, "1600:") {
		t.Fatalf("routing after moving to table 1600:\n%s", got)
	}

	// Closing (a normal stop) keeps everything: traffic fails closed.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ns.nft(t, "list", "tables"), "inet egressfw") {
		t.Fatal("Close removed the table")
	}
	// A fresh Manager (the next process) cleans up without having applied.
	fresh := ns.manager(t)
	for i := range 2 { // a second cleanup finds nothing and succeeds
		if err := fresh.Cleanup(moved); err != nil {
			t.Fatalf("cleanup %d: %v", i, err)
		}
	}
	if got := routingState(t, ns, spec); got != "" {
		t.Errorf("routing left after cleanup:\n%s", got)
	}
	if got := strings.TrimSpace(ns.nft(t, "list", "ruleset")); got != "" {
		t.Errorf("ruleset left after cleanup:\n%s", got)
	}
}

// TestCgroupRecreated follows a tenant cgroup that does not exist at Apply,
// appears, is removed and re-created with a new id: each time only the map
// changes and a process in the new cgroup is intercepted.
func TestCgroupRecreated(t *testing.T) {
	ns := newNetns(t, true)
	mnt, root := testCgroups(t)
	rel := root + "/svc"
	dir := filepath.Join(mnt, rel)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{{Name: "svc", Slot: 1, ListenerPort: 15001, Cgroups: []string{rel}}}
	m := ns.manager(t)
	if err := m.Apply(spec, nil); err != nil {
		t.Fatalf("apply with the cgroup missing: %v", err)
	}
	listeners := transparentListen(t, ns, 15001)
	var lastID uint64
	for round := range 3 {
		start := time.Now()
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		id := cgroupID(t, dir)
		if err := m.SetCgroupIDs(nftspec.CgroupIDs{rel: id}); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: mkdir to map updated in %v", round, time.Since(start))
		if id == lastID {
			t.Fatalf("re-created cgroup kept id %d", id)
		}
		if got := mapKeys(t, ns, spec.Table, "cgroup_l2"); len(got) != 1 || got[0] != id {
			t.Fatalf("map keys after round %d: %v, want [%d]", round, got, id)
		}
		got := runClient(t, ns, client{cgroup: dir}, "tcp", "192.0.2.10:443", "r")
		checkOutcome(t, "intercept 15001", "192.0.2.10:443", "r", got, listeners, nil, nil)
		lastID = id
		if err := netnstest.RemoveCgroupTree(dir); err != nil {
			t.Fatal(err)
		}
		if err := m.SetCgroupIDs(nil); err != nil {
			t.Fatal(err)
		}
		if got := mapKeys(t, ns, spec.Table, "cgroup_l2"); len(got) != 0 {
			t.Fatalf("stale ids left after rmdir: %v", got)
		}
	}
}

// mapKeys reads the keys of a set or map over netlink (nft would
// print them as paths when it can resolve them).
func mapKeys(t *testing.T, ns *testNetns, table, name string) []uint64 {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	set, err := c.GetSetByName(tb, name)
	if err != nil {
		t.Fatal(err)
	}
	elems, err := c.GetSetElements(set)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range elems {
		switch len(e.Key) {
		case 8:
			out = append(out, binaryutil.NativeEndian.Uint64(e.Key))
		case 4:
			out = append(out, uint64(binaryutil.NativeEndian.Uint32(e.Key)))
		default:
			out = append(out, uint64(binaryutil.BigEndian.Uint16(e.Key)))
		}
	}
	return out
}

// TestTProxyPortFromMap checks the kernel program of the tproxy rules: the
// listener port is looked up by the slot in the ct mark. (nft 1.0.6 loads
// this but does not print the port; see tproxyPortMap.)
func TestTProxyPortFromMap(t *testing.T) {
	ns := newNetns(t, false)
	if err := ns.manager(t).Apply(sampleSpec(), nil); err != nil {
		t.Fatal(err)
	}
	out := ns.nft(t, "--debug=netlink", "list", "chain", "inet", "egressfw", "prerouting")
	for _, want := range []string{
		"[ ct load mark => reg 1 ]",
		"[ bitwise reg 1 = ( reg 1 & 0x00000fff ) ^ 0x00000000 ]",
		"[ lookup reg 1 set tproxy_ports dreg 2 0x0 ]",
		"[ tproxy ip addr reg 1 port reg 2 ]",
		"[ tproxy ip6 addr reg 1 port reg 2 ]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prerouting program lacks %q:\n%s", want, out)
		}
	}
}

// TestLargeSpecComplete applies 1000 tenants and reads every map back: no
// element may be lost to netlink attribute limits.
func TestLargeSpecComplete(t *testing.T) {
	ns := newNetns(t, false)
	m := ns.manager(t)
	spec, ids := benchSpec(1000)
	if err := m.Apply(spec, ids); err != nil {
		t.Fatal(err)
	}
	ids["bench.slice/t999.service"] = 1 << 42
	delete(ids, "bench.slice/t1.service")
	if err := m.SetCgroupIDs(ids); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cgroup_l2", "uids", "tproxy_ports", "listener_ports"} {
		want := 1000
		switch name {
		case "cgroup_l2":
			want = 999
		case "uids": // an interval map: a start and an end element per uid
			want = 2000
		}
		if got := len(mapKeys(t, ns, spec.Table, name)); got != want {
			t.Errorf("%s has %d elements, want %d", name, got, want)
		}
	}
	keys := mapKeys(t, ns, spec.Table, "cgroup_l2")
	if !slices.Contains(keys, 1<<42) || slices.Contains(keys, 1<<40+1) || slices.Contains(keys, 1<<40+999) {
		t.Errorf("cgroup_l2 keys were not updated: %d keys", len(keys))
	}
}

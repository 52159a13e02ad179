package nft

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// TestGuardKeepsUnknownCgroupsBlocked proves the fail-closed property of
// guards: below a guard, only known tenant cgroups get out (through the
// listener); any other cgroup, including a tenant cgroup re-created while
// nothing updates the maps (egressfw down), is refused.
func TestGuardKeepsUnknownCgroupsBlocked(t *testing.T) {
	ns := newNetns(t, true)
	mnt, root := testCgroups(t)
	for _, d := range []string{"g", "g/tenant", "g/stranger", "outside"} {
		if err := os.Mkdir(filepath.Join(mnt, root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := nftspec.DefaultSpec()
	spec.Guards = []string{root + "/g"}
	spec.Tenants = []nftspec.Tenant{{Name: "t", Slot: 1, ListenerPort: 15001, Cgroups: []string{root + "/g/tenant"}}}
	ids := nftspec.CgroupIDs{
		root + "/g":        cgroupID(t, filepath.Join(mnt, root, "g")),
		root + "/g/tenant": cgroupID(t, filepath.Join(mnt, root, "g/tenant")),
	}
	if err := ns.manager(t).Apply(spec, ids); err != nil {
		t.Fatal(err)
	}
	if got := ns.nft(t, "list", "map", "inet", spec.Table, rules.CgroupMapName(nftspec.CgroupLevel(root+"/g"))); !strings.Contains(got, "goto deny") {
		t.Fatalf("guard element missing from the map:\n%s", got)
	}
	listeners := transparentListen(t, ns, 15001)
	cg := func(d string) client { return client{cgroup: filepath.Join(mnt, root, d)} }
	run := func(name, dir, want string) {
		t.Run(name, func(t *testing.T) {
			payload := strings.ReplaceAll(name, " ", "_") // the helper splits its spec on spaces
			got := runClient(t, ns, cg(dir), "tcp", "192.0.2.10:80", payload)
			checkOutcome(t, want, "192.0.2.10:80", payload, got, listeners, nil, nil)
		})
	}
	run("tenant below guard intercepted", "g/tenant", "intercept 15001")
	run("unknown cgroup below guard refused", "g/stranger", "refused")
	run("cgroup outside guard untouched", "outside", "unanswered")

	// systemd re-creates a service's cgroup on restart; with no daemon to
	// update the map the new id is unknown, and the guard must hold.
	dir := filepath.Join(mnt, root, "g/tenant")
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run("re-created tenant cgroup without update refused", "g/tenant", "refused")
}

// TestBoundSocketCannotEscape: a tenant socket bound to a device is routed
// by that device, not by the fwmark table, so without the postrouting check
// its SYN would leave unintercepted. A probe counter on the device proves
// nothing left; an unbound connection of the same tenant is still
// intercepted.
func TestBoundSocketCannotEscape(t *testing.T) {
	ns := newNetns(t, true)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{{Name: "t", Slot: 1, ListenerPort: 15001, UIDs: []uint32{4242}}}
	if err := ns.manager(t).Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	ns.nftScript(t, `table inet probe {
	chain post { type filter hook postrouting priority 100; oifname "dummy0" tcp dport 80 counter; }
}`)
	listeners := transparentListen(t, ns, 15001)
	for _, dst := range []string{"192.0.2.10:80", "[2001:db8::10]:80"} {
		got := runClient(t, ns, client{fsuid: 4242, bindDev: "dummy0"}, "tcp", dst, "bound")
		checkOutcome(t, "unanswered", dst, "bound", got, listeners, nil, nil)
	}
	if out := ns.nft(t, "list", "chain", "inet", "probe", "post"); !strings.Contains(out, "counter packets 0 ") {
		t.Fatalf("intercepted SYNs left through dummy0:\n%s", out)
	}
	got := runClient(t, ns, client{fsuid: 4242}, "tcp", "192.0.2.10:80", "unbound")
	checkOutcome(t, "intercept 15001", "192.0.2.10:80", "unbound", got, listeners, nil, nil)
}

// TestTenantCannotReuseAnotherSocketsFlow: conntrack knows flows by tuple,
// not by socket. A tenant that binds the source port of a live, answered
// non-tenant UDP flow (egressfw's resolver is the easy one: its ports are in
// /proc/net/udp) must still be classified as the tenant and refused, not
// carried out by the flow's "established" state.
func TestTenantCannotReuseAnotherSocketsFlow(t *testing.T) {
	ns := newNetns(t, true)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{{Name: "t", Slot: 1, ListenerPort: 15001, UIDs: []uint32{4242}}}
	if err := ns.manager(t).Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	got := udpListen(t, ns, "198.51.100.1:5353", true)
	const src = 40123
	if res := runClient(t, ns, client{srcPort: src}, "udp", "198.51.100.1:5353", "resolver"); !strings.HasPrefix(res, "OK") {
		t.Fatalf("non-tenant send: %s", res)
	}
	waitFor(t, got, "resolver")
	res := runClient(t, ns, client{fsuid: 4242, srcPort: src}, "udp", "198.51.100.1:5353", "smuggled")
	if !strings.Contains(res, "operation not permitted") {
		t.Errorf("tenant on a reused tuple: %s, want the send refused", res)
	}
	select {
	case p := <-got:
		if p == "smuggled" {
			t.Fatal("the tenant's datagram rode another socket's conntrack entry out")
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func waitFor(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case p := <-ch:
			if p == want {
				return
			}
		case <-deadline:
			t.Fatalf("%q never arrived", want)
		}
	}
}

package daemon

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/docker"
	"github.com/egressfw/egressfw/internal/nft/nftspec"
	"github.com/egressfw/egressfw/internal/proxy"
)

// labelGen is a generation with Docker on and tenants "trusted" (slot 2,
// label tier=trusted), "team" (slot 3, label team=a) and the interface
// tenant "containers" (slot 1).
func labelGen() *generation {
	cfg := config.Default()
	cfg.Docker.Socket = "/run/docker.sock"
	cfg.Tenants = []config.Tenant{
		{Name: "containers", Interfaces: []string{"docker0"}},
		{Name: "trusted", DockerLabels: map[string]string{"tier": "trusted"}},
		{Name: "team", DockerLabels: map[string]string{"team": "a"}},
	}
	return &generation{cfg: &cfg, slots: map[string]config.Slot{"containers": {ID: 1}, "trusted": {ID: 2}, "team": {ID: 3}}}
}

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{2, 0x42, 0xac, 0x11, 0, last} }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ctr(id, name string, labels map[string]string, eps ...docker.Endpoint) docker.Container {
	return docker.Container{ID: id, Name: name, Labels: labels, Endpoints: eps}
}

func ep(port int, m net.HardwareAddr, v4, v6 string) docker.Endpoint {
	e := docker.Endpoint{Network: "bridge", Port: port, Bridge: 3, MAC: m}
	if v4 != "" {
		e.IPv4 = ip(v4)
	}
	if v6 != "" {
		e.IPv6 = ip(v6)
	}
	return e
}

func TestBindingsOf(t *testing.T) {
	trusted, team := map[string]string{"tier": "trusted"}, map[string]string{"team": "a"}
	both := map[string]string{"tier": "trusted", "team": "a"}
	tests := []struct {
		name       string
		containers []docker.Container
		want       []nftspec.Container
		byAddr     map[netip.Addr]proxy.Container
		ambiguous  map[string][]string
	}{
		{"labelled gets its tenant's slot, both families",
			[]docker.Container{ctr("aaaaaaaaaaaaaaaa", "relay", trusted, ep(10, mac(2), "172.17.0.2", "fd00:17::2"))},
			[]nftspec.Container{{Port: 10, MAC: mac(2), Addrs: []netip.Addr{ip("172.17.0.2"), ip("fd00:17::2")}, Slot: 2}},
			map[netip.Addr]proxy.Container{ip("172.17.0.2"): {Name: "relay", ID: "aaaaaaaaaaaa"}, ip("fd00:17::2"): {Name: "relay", ID: "aaaaaaaaaaaa"}}, nil},
		{"unlabelled is bound with slot 0",
			[]docker.Container{ctr("b", "web", map[string]string{"tier": "other"}, ep(11, mac(3), "172.17.0.3", ""))},
			[]nftspec.Container{{Port: 11, MAC: mac(3), Addrs: []netip.Addr{ip("172.17.0.3")}}},
			map[netip.Addr]proxy.Container{ip("172.17.0.3"): {Name: "web", ID: "b"}}, nil},
		{"two tenants match: neither",
			[]docker.Container{ctr("c", "greedy", both, ep(12, mac(4), "172.17.0.4", ""))},
			[]nftspec.Container{{Port: 12, MAC: mac(4), Addrs: []netip.Addr{ip("172.17.0.4")}}},
			map[netip.Addr]proxy.Container{ip("172.17.0.4"): {Name: "greedy", ID: "c"}}, map[string][]string{"c": {"trusted", "team"}}},
		{"each network its own port",
			[]docker.Container{ctr("d", "multi", team, ep(13, mac(5), "172.17.0.5", ""), ep(14, mac(6), "172.30.0.2", ""))},
			[]nftspec.Container{{Port: 13, MAC: mac(5), Addrs: []netip.Addr{ip("172.17.0.5")}, Slot: 3}, {Port: 14, MAC: mac(6), Addrs: []netip.Addr{ip("172.30.0.2")}, Slot: 3}},
			map[netip.Addr]proxy.Container{ip("172.17.0.5"): {Name: "multi", ID: "d"}, ip("172.30.0.2"): {Name: "multi", ID: "d"}}, nil},
		{"no port, no MAC, no address, link-local only: not bound",
			[]docker.Container{
				ctr("e", "noport", trusted, ep(0, mac(7), "172.17.0.7", "")),
				ctr("f", "nomac", trusted, ep(15, nil, "172.17.0.8", "")),
				ctr("g", "noaddr", trusted, ep(16, mac(9), "", "")),
				ctr("h", "linklocal", trusted, ep(17, mac(10), "", "fe80::1")),
			}, nil, map[netip.Addr]proxy.Container{}, nil},
		{"one port shared by two containers: the slot only if both have it",
			[]docker.Container{ctr("i", "infra", trusted, ep(18, mac(11), "172.17.0.11", "")), ctr("j", "app", nil, ep(18, mac(11), "172.17.0.11", ""))},
			[]nftspec.Container{{Port: 18, MAC: mac(11), Addrs: []netip.Addr{ip("172.17.0.11")}}},
			map[netip.Addr]proxy.Container{}, nil},
		{"one address on two ports: no name for it",
			[]docker.Container{ctr("k", "old", trusted, ep(19, mac(12), "172.17.0.12", "")), ctr("l", "new", nil, ep(20, mac(13), "172.17.0.12", ""))},
			[]nftspec.Container{{Port: 19, MAC: mac(12), Addrs: []netip.Addr{ip("172.17.0.12")}, Slot: 2}, {Port: 20, MAC: mac(13), Addrs: []netip.Addr{ip("172.17.0.12")}}},
			map[netip.Addr]proxy.Container{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := &docker.Snapshot{Containers: map[string]docker.Container{}, Live: true}
			for _, c := range tc.containers {
				snap.Containers[c.ID] = c
			}
			b := bindingsOf(snap, labelGen())
			if !reflect.DeepEqual(b.cs, tc.want) {
				t.Errorf("bindings:\n got %+v\nwant %+v", b.cs, tc.want)
			}
			if !reflect.DeepEqual(b.byAddr, tc.byAddr) {
				t.Errorf("by address:\n got %v\nwant %v", b.byAddr, tc.byAddr)
			}
			if len(b.ambiguous) != 0 || len(tc.ambiguous) != 0 {
				if !reflect.DeepEqual(b.ambiguous, tc.ambiguous) {
					t.Errorf("ambiguous = %v, want %v", b.ambiguous, tc.ambiguous)
				}
			}
		})
	}
	if b := bindingsOf(nil, labelGen()); len(b.cs) != 0 {
		t.Errorf("no snapshot binds %v", b.cs)
	}
}

// TestCheckLabelledSlots: a reload keeps a tenant's slot, which can be
// past what the container mark carries; such a reload fails, naming the
// tenant and the mask's key.
func TestCheckLabelledSlots(t *testing.T) {
	gen := labelGen()
	cfg := gen.cfg
	if err := checkLabelledSlots(cfg, gen.slots); err != nil {
		t.Fatal(err)
	}
	slots := map[string]config.Slot{"containers": {ID: 300}, "trusted": {ID: 2}, "team": {ID: 256}}
	err := checkLabelledSlots(cfg, slots)
	if err == nil || !strings.Contains(err.Error(), `tenant "team" holds slot 256, more than firewall.container_mark_mask 0xff carries (255)`) {
		t.Errorf("slot 256 of a labelled tenant: %v", err)
	}
	cfg.Docker.Socket = ""
	if err := checkLabelledSlots(cfg, slots); err != nil {
		t.Errorf("without docker.socket: %v", err)
	}
}

// TestDockerSettingsNeedRestart: the follower starts with the process, so
// a reload that changes [docker] is refused; docker_labels reload.
func TestDockerSettingsNeedRestart(t *testing.T) {
	old := labelGen().cfg
	next := *old
	next.Docker.Reconcile = config.D(5 * 1e9)
	if err := firewallUnchanged(old, &next); err == nil || !strings.Contains(err.Error(), "[docker] settings changed: restart egressfw") {
		t.Errorf("reconcile changed: %v", err)
	}
	next = *old
	next.Tenants = append([]config.Tenant{}, old.Tenants...)
	next.Tenants[1].DockerLabels = map[string]string{"tier": "gold"}
	if err := firewallUnchanged(old, &next); err != nil {
		t.Errorf("docker_labels changed: %v", err)
	}
	next = *old
	next.Firewall.ContainerMarkMask = 0xf
	if err := firewallUnchanged(old, &next); err == nil {
		t.Error("container_mark_mask changed without a restart")
	}
}

package nft

import (
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// TestWatchRestoresBridge: the bridge table and its bindings come back
// after the changes other programs make to it, alone or with the inet
// table; egressfw's own SetContainers triggers no restore.
func TestWatchRestoresBridge(t *testing.T) {
	cs := []nftspec.Container{
		{Port: 1000, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 10}, Addrs: []netip.Addr{netip.MustParseAddr("172.18.0.10"), netip.MustParseAddr("fd00:18::a")}, Slot: 2},
		{Port: 1001, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 20}, Addrs: []netip.Addr{netip.MustParseAddr("172.18.0.20")}},
	}
	cases := []struct {
		name   string
		change func(t *testing.T, ns *testNetns)
		what   string
	}{
		{"delete the bridge table", func(t *testing.T, ns *testNetns) { ns.nft(t, "delete", "table", "bridge", "egressfw") },
			`^delete table \(bridge egressfw\)$`},
		{"flush ruleset", func(t *testing.T, ns *testNetns) { ns.nft(t, "flush", "ruleset") },
			`^delete table ×2 \((egressfw, bridge egressfw|bridge egressfw, egressfw)\)$`},
		{"delete a binding", func(t *testing.T, ns *testNetns) {
			ns.nft(t, "delete", "element", "bridge", "egressfw", rules.SetPort4, "{ 1000 . 172.18.0.10 }")
		}, `^delete element \(bridge port_ip\)$`},
		{"flush the guard", func(t *testing.T, ns *testNetns) { ns.nft(t, "flush", "chain", "bridge", "egressfw", rules.ChainGuard) },
			`^delete rule ×12 \(bridge port_guard\); delete set ×2 \(bridge __set0, bridge __set1\)$`}, // and its anonymous sets
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns, m, got := watching(t, containerSpec(), nil)
			if err := m.SetContainers(cs); err != nil {
				t.Fatal(err)
			}
			waitSpare(t, m)
			select {
			case r := <-got:
				t.Fatalf("restore %+v after egressfw's own SetContainers", r)
			case <-time.After(300 * time.Millisecond):
			}
			inet, bridge := listBoth(t, ns)
			tc.change(t, ns)
			var r Restore
			select {
			case r = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no restore within 5s")
			}
			if r.Err != nil || !regexp.MustCompile(tc.what).MatchString(r.What) {
				t.Fatalf("restore %+v, want a successful one matching %q", r, tc.what)
			}
			haveInet, haveBridge := listBoth(t, ns)
			if !slices.Equal(haveInet, inet) {
				t.Errorf("inet table after the restore:\n%s\nwant:\n%s", strings.Join(haveInet, "\n"), strings.Join(inet, "\n"))
			}
			if !slices.Equal(haveBridge, bridge) {
				t.Errorf("bridge table after the restore:\n%s\nwant:\n%s", strings.Join(haveBridge, "\n"), strings.Join(bridge, "\n"))
			}
		})
	}
}

// listBoth lists egressfw's inet and bridge tables as sorted blocks.
func listBoth(t *testing.T, ns *testNetns) (inet, bridge []string) {
	t.Helper()
	return blocks(ns.nft(t, "list", "table", "inet", "egressfw")), blocks(ns.nft(t, "list", "table", "bridge", "egressfw"))
}

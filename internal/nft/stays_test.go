package nft

import (
	"net/netip"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// TestForwardedStaysBetweenMembers: a forwarded tenant's ranges exempt
// only the traffic that stays between its members. With the README's
// Docker range (172.16.0.0/12), a LAN host at 172.24.0.10, inside the
// range but behind the host's LAN interface, is egress like any other
// destination: port 80 is redirected to the tenant's listener, 8080 is
// rejected, and the LAN host sees nothing. Two containers on the tenant's
// bridge still talk on any port, over IPv4 and IPv6 (neighbour discovery
// included), uninterrupted. Both kinds of tenant: by interface (and
// ranges), and by range only (a tenant interface is then the one the
// packet came in on).
func TestForwardedStaysBetweenMembers(t *testing.T) {
	ranges := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("fd00:17::/64")}
	tests := []struct {
		name   string
		tenant nftspec.Tenant
	}{
		{"by interface", nftspec.Tenant{Interfaces: []string{"br-*"}, Sources: ranges}},
		{"by source range", nftspec.Tenant{Sources: ranges}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFwdTopo(t)
			lan := newNetns(t, false)
			netnstest.Veth(t, netnstest.End{NS: f.host.Name, Dev: "lan0", Addrs: []string{"172.24.0.1/24"}},
				netnstest.End{NS: lan.Name, Dev: "eth0", Addrs: []string{"172.24.0.10/24"}})
			lan.Run(t, "ip", "route", "add", "default", "via", "172.24.0.1")
			peer := newNetns(t, false) // a second container on the same bridge
			netnstest.Veth(t, netnstest.End{NS: f.host.Name, Dev: "vc2"},
				netnstest.End{NS: peer.Name, Dev: "eth0", Addrs: []string{"172.17.0.3/16", "fd00:17::3/64"}})
			f.host.Run(t, "ip", "link", "set", "vc2", "master", "br-t1")

			spec := nftspec.DefaultSpec()
			tc.tenant.Name, tc.tenant.Slot, tc.tenant.ListenerPort = "containers", 1, 15001
			spec.Tenants = []nftspec.Tenant{tc.tenant}
			if err := f.host.manager(t).Apply(spec, nil); err != nil {
				t.Fatal(err)
			}
			listener := sink(listenTCP(t, f.host, ":15001", true))
			lanWeb, lanOther := tcpSink(t, lan, ":80"), tcpSink(t, lan, ":8080")
			peerWeb, peerOther := tcpSink(t, peer, ":80"), tcpSink(t, peer, ":8080")

			t.Run("LAN host in the range, port 80", func(t *testing.T) {
				if got := dialFrom(t, f.ctr, "tcp", "", "172.24.0.10:80"); got != "ok" {
					t.Fatalf("dial = %s, want ok (redirected to the listener)", got)
				}
				select {
				case a := <-listener:
					if a.local != "172.17.0.1:15001" {
						t.Errorf("listener got local %s, want 172.17.0.1:15001", a.local)
					}
				case <-time.After(2 * time.Second):
					t.Error("the tenant's listener saw no connection: the LAN host was treated as a member")
				}
				nothingOn(t, "LAN host :80", lanWeb)
			})
			t.Run("LAN host in the range, port 8080", func(t *testing.T) {
				if got := dialFrom(t, f.ctr, "tcp", "", "172.24.0.10:8080"); got != "refused" {
					t.Errorf("dial = %s, want refused", got)
				}
				nothingOn(t, "LAN host :8080", lanOther)
			})
			for _, c := range []struct {
				name, raddr string
				ch          <-chan accepted
			}{
				{"container to container on 80", "172.17.0.3:80", peerWeb},
				{"container to container on 8080", "172.17.0.3:8080", peerOther},
				{"container to container over IPv6", "[fd00:17::3]:80", peerWeb},
			} {
				t.Run(c.name, func(t *testing.T) {
					if got := dialFrom(t, f.ctr, "tcp", "", c.raddr); got != "ok" {
						t.Fatalf("dial = %s, want ok", got)
					}
					select {
					case <-c.ch:
					case <-time.After(2 * time.Second):
						t.Fatal("the other container saw no connection")
					}
				})
			}
			nothingOn(t, "listener", listener)
		})
	}
}

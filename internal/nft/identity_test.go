package nft

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"golang.org/x/sys/unix"
)

var brnfModes = []struct {
	name string
	on   bool
}{{"br_netfilter on", true}, {"br_netfilter off", false}}

// TestContainerIdentity: containers A (labelled "trusted") and B
// (identified, unlabelled) on a bridge the interface tenant "containers"
// covers, with br_netfilter's sysctls on and off. A gets its labelled
// tenant and B keeps the interface tenant; B cannot send as A (spoofed
// source, every protocol, IPv4 and IPv6), cannot point the host's
// neighbour entries for A at itself (ARP reply, unsolicited NA), cannot
// take A's MAC; a container egressfw has not identified cannot use an
// identified address.
func TestContainerIdentity(t *testing.T) {
	for _, mode := range brnfModes {
		t.Run(mode.name, func(t *testing.T) {
			tp := newCtrTopo(t, mode.on)
			a, b := tp.container(t, "pa", 10), tp.container(t, "pb", 20)
			if err := tp.m.SetContainers([]nftspec.Container{a.identity(2), b.identity(0)}); err != nil {
				t.Fatal(err)
			}
			t.Run("tenants", func(t *testing.T) { checkTenants(t, tp, a, b) })
			t.Run("spoofed sources", func(t *testing.T) { checkSpoofing(t, tp, a, b) })
			t.Run("neighbour poisoning", func(t *testing.T) { checkPoisoning(t, tp, a, b) })
			t.Run("MAC change", func(t *testing.T) { checkMACChange(t, tp, a, b) })
			t.Run("unknown port", func(t *testing.T) { checkUnknownPort(t, tp, a) })
			t.Run("another program's fwmark rule", func(t *testing.T) { checkMarkCleared(t, tp, a) })
		})
	}
}

// checkTenants: A's intercepted TCP goes to the labelled tenant's listener
// port and it reaches the wiki; B's goes to the interface tenant's port and
// it does not.
func checkTenants(t *testing.T, tp *ctrTopo, a, b *ctr) {
	listener := sink(listenTCP(t, tp.host, ":15001", true))
	labelled := sink(listenTCP(t, tp.host, ":15002", true))
	wiki := tcpSink(t, tp.out, "10.20.0.20:8080")
	for _, tc := range []struct {
		who       *ctr
		raddr     string
		via       <-chan accepted
		wantLocal string
	}{
		{a, "198.51.100.10:80", labelled, "172.18.0.1:15002"},
		{a, "[2001:db8:1::10]:443", labelled, "[fd00:18::1]:15002"},
		{b, "198.51.100.10:80", listener, "172.18.0.1:15001"},
		{b, "[2001:db8:1::10]:443", listener, "[fd00:18::1]:15001"},
	} {
		if got := dialFrom(t, tc.who.ns, "tcp", "", tc.raddr); got != "ok" {
			t.Fatalf("%s dial %s = %s, want ok (redirected)", tc.who.port, tc.raddr, got)
		}
		select {
		case acc := <-tc.via:
			if acc.local != tc.wantLocal {
				t.Errorf("%s to %s: listener got local %s, want %s", tc.who.port, tc.raddr, acc.local, tc.wantLocal)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s to %s: no connection on %s", tc.who.port, tc.raddr, tc.wantLocal)
		}
	}
	if got := dialFrom(t, a.ns, "tcp", "", "10.20.0.20:8080"); got != "ok" {
		t.Fatalf("labelled A to the wiki = %s, want ok", got)
	}
	<-wiki
	if got := dialFrom(t, b.ns, "tcp", "", "10.20.0.20:8080"); got != "refused" {
		t.Fatalf("unlabelled B to the wiki = %s, want refused", got)
	}
	nothingOn(t, "wiki", wiki)
	// containers of one bridge reach each other: not intercepted, not egress
	for _, port := range []string{"80", "8080"} {
		inB := tcpSink(t, b.ns, ":"+port)
		if got := dialFrom(t, a.ns, "tcp", "", b.ip4.String()+":"+port); got != "ok" {
			t.Fatalf("labelled A to B's port %s = %s, want ok", port, got)
		}
		select {
		case <-inB:
		case <-time.After(2 * time.Second):
			t.Fatalf("B's port %s saw nothing of A's connection", port)
		}
	}
	nothingOn(t, "the labelled tenant's listener", labelled)
}

// checkSpoofing: B's frames with A's source address, in every protocol,
// reach nothing, while the same frames with B's own source arrive.
func checkSpoofing(t *testing.T, tp *ctrTopo, a, b *ctr) {
	count := tp.countFrom(t, a.ip4, a.ip6, b.ip4, b.ip6)
	dst4, dst6 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8:1::10")
	protos4 := []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_ICMP, unix.IPPROTO_GRE, 253}
	protos6 := []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_ICMPV6, unix.IPPROTO_GRE, 253}
	var frames []string
	send := func(src, dst netip.Addr, protos []byte) {
		for _, p := range protos {
			typ, pkt := ipPacket(src, dst, p, l4(p, src, dst))
			sendFrames(t, b.ns, "eth0", frame(tp.brMAC, b.mac, typ, pkt))
			frames = append(frames, fmt.Sprintf("%v proto %d", src, p))
		}
	}
	send(a.ip4, dst4, protos4)
	send(a.ip6, dst6, protos6)
	send(b.ip4, dst4, protos4)
	send(b.ip6, dst6, protos6)
	time.Sleep(300 * time.Millisecond)
	got := count()
	for _, addr := range []netip.Addr{b.ip4, b.ip6} {
		if got[addr] < 5 {
			t.Errorf("from B's own %v: %d of 5 packets arrived, want all (the probe must be deliverable)", addr, got[addr])
		}
	}
	for _, addr := range []netip.Addr{a.ip4, a.ip6} {
		if got[addr] != 0 {
			t.Errorf("B sending as A (%v): %d packets arrived, want 0", addr, got[addr])
		}
	}
}

// checkMarkCleared: the identity bits are gone from the packet mark
// before the routing decision, so another program's fwmark rule that
// happens to equal a labelled tenant's slot (2 here) reroutes nothing.
func checkMarkCleared(t *testing.T, tp *ctrTopo, a *ctr) {
	tp.host.Run(t, "ip", "route", "add", "unreachable", "default", "table", "200")
	tp.host.Run(t, "ip", "rule", "add", "fwmark", "2", "lookup", "200", "pref", "100")
	t.Cleanup(func() { tp.host.Run(t, "ip", "rule", "del", "pref", "100") })
	wiki := tcpSink(t, tp.out, "10.20.0.20:8080")
	if got := dialFrom(t, a.ns, "tcp", "", "10.20.0.20:8080"); got != "ok" {
		t.Fatalf("labelled A to the wiki with a foreign fwmark 2 rule = %s, want ok", got)
	}
	<-wiki
}

// checkPoisoning: an ARP reply and an unsolicited neighbour advertisement
// from B claiming A's addresses leave the host's entries for A alone.
func checkPoisoning(t *testing.T, tp *ctrTopo, a, b *ctr) {
	for _, addr := range []netip.Addr{a.ip4, a.ip6} { // as a ping would leave them
		tp.host.Run(t, "ip", "neigh", "replace", addr.String(), "lladdr", a.mac.String(), "dev", "br-c", "nud", "reachable")
	}
	time.Sleep(1100 * time.Millisecond) // past the kernel's ARP locktime (1s), which ignores replies to a fresh entry
	host6 := netip.MustParseAddr("fd00:18::1")
	sendFrames(t, b.ns, "eth0",
		arpReply(b.mac, a.ip4, tp.brMAC, netip.MustParseAddr("172.18.0.1")),
		neighborAdvert(b.mac, b.ip6, host6, a.ip6, tp.brMAC))
	time.Sleep(200 * time.Millisecond)
	for _, addr := range []netip.Addr{a.ip4, a.ip6} {
		if n := tp.neighbour(t, addr); !strings.Contains(n, a.mac.String()) {
			t.Errorf("host's neighbour entry for A's %v = %q, want A's MAC %v", addr, n, a.mac)
		}
	}
}

// checkMACChange: B (with NET_ADMIN) takes A's MAC: its frames are
// dropped, and the bridge keeps A's MAC on A's port.
func checkMACChange(t *testing.T, tp *ctrTopo, a, b *ctr) {
	count := tp.countFrom(t, b.ip4)
	b.ns.Run(t, "ip", "link", "set", "eth0", "address", a.mac.String())
	t.Cleanup(func() { b.ns.Run(t, "ip", "link", "set", "eth0", "address", b.mac.String()) })
	dst := netip.MustParseAddr("198.51.100.10")
	typ, pkt := ipPacket(b.ip4, dst, unix.IPPROTO_UDP, l4(unix.IPPROTO_UDP, b.ip4, dst))
	sendFrames(t, b.ns, "eth0", frame(tp.brMAC, a.mac, typ, pkt), frame(tp.brMAC, a.mac, typ, pkt))
	time.Sleep(200 * time.Millisecond)
	if n := count()[b.ip4]; n != 0 {
		t.Errorf("B with A's MAC: %d packets arrived, want 0", n)
	}
	fdb := tp.host.Run(t, "bridge", "fdb", "show", "br", "br-c")
	for _, l := range strings.Split(fdb, "\n") {
		if strings.HasPrefix(l, a.mac.String()+" ") && !strings.Contains(l, "dev pa ") {
			t.Errorf("bridge forwarding entry for A's MAC moved: %q", l)
		}
	}
}

// checkUnknownPort: a container egressfw has not identified (a new one,
// or any while the Engine API cannot be read) sends as itself under the
// interface tenant, but not from an identified container's address.
func checkUnknownPort(t *testing.T, tp *ctrTopo, a *ctr) {
	u := tp.container(t, "pu", 30)
	count := tp.countFrom(t, u.ip4, a.ip4, a.ip6)
	dst4, dst6 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8:1::10")
	send := func(src, dst netip.Addr) {
		typ, pkt := ipPacket(src, dst, unix.IPPROTO_UDP, l4(unix.IPPROTO_UDP, src, dst))
		sendFrames(t, u.ns, "eth0", frame(tp.brMAC, u.mac, typ, pkt))
	}
	send(u.ip4, dst4)
	send(a.ip4, dst4)
	send(a.ip6, dst6)
	sendFrames(t, u.ns, "eth0", arpReply(u.mac, a.ip4, tp.brMAC, netip.MustParseAddr("172.18.0.1")))
	time.Sleep(200 * time.Millisecond)
	got := count()
	if got[u.ip4] != 1 {
		t.Errorf("unidentified container as itself: %d packets arrived, want 1", got[u.ip4])
	}
	if got[a.ip4]+got[a.ip6] != 0 {
		t.Errorf("unidentified container as A: %d packets arrived, want 0", got[a.ip4]+got[a.ip6])
	}
	if n := tp.neighbour(t, a.ip4); !strings.Contains(n, a.mac.String()) {
		t.Errorf("host's neighbour entry for A = %q after an unidentified container's ARP reply, want A's MAC", n)
	}
}

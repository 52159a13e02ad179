package nft

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// fwdTopo is a host namespace routing between a container namespace
// (behind bridge br-t1, as Docker wires docker0 and br-*) and a public one.
type fwdTopo struct{ host, ctr, pub *testNetns }

func newFwdTopo(t *testing.T) *fwdTopo {
	t.Helper()
	f := &fwdTopo{host: newNetns(t, false), ctr: newNetns(t, false), pub: newNetns(t, false)}
	h, c, p := f.host, f.ctr, f.pub
	h.Run(t, "ip", "link", "add", "br-t1", "type", "bridge")
	h.Run(t, "ip", "addr", "add", "172.17.0.1/16", "dev", "br-t1")
	h.Run(t, "ip", "-6", "addr", "add", "fd00:17::1/64", "dev", "br-t1", "nodad")
	h.Run(t, "ip", "link", "set", "br-t1", "up")
	netnstest.Veth(t, netnstest.End{NS: h.Name, Dev: "vc1"},
		netnstest.End{NS: c.Name, Dev: "eth0", Addrs: []string{"172.17.0.2/16", "10.9.9.9/32" /* a spoofed source */, "fd00:17::2/64"}})
	h.Run(t, "ip", "link", "set", "vc1", "master", "br-t1")
	c.Run(t, "ip", "route", "add", "default", "via", "172.17.0.1")
	c.Run(t, "ip", "-6", "route", "add", "default", "via", "fd00:17::1")
	netnstest.Veth(t, netnstest.End{NS: h.Name, Dev: "up0", Addrs: []string{"198.51.100.1/24", "2001:db8:1::1/64"}},
		netnstest.End{NS: p.Name, Dev: "eth0", Addrs: []string{"198.51.100.10/24", "198.51.100.53/24", "2001:db8:1::10/64"}})
	p.Run(t, "ip", "route", "add", "172.17.0.0/16", "via", "198.51.100.1")
	p.Run(t, "ip", "route", "add", "10.9.9.9/32", "via", "198.51.100.1")
	p.Run(t, "ip", "-6", "route", "add", "fd00:17::/64", "via", "2001:db8:1::1")
	h.Run(t, "ip", "route", "add", "10.9.9.9/32", "via", "172.17.0.2") // the spoofer would even be routed back
	h.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	return f
}

// dialFrom connects from ns (optionally from laddr) and reports "ok",
// "refused" (a reset) or "timeout". A timeout is tried once more: on a
// loaded machine the first IPv6 neighbour discovery of a fresh veth can
// outlast one 700 ms try, and a dropped path times out twice anyway.
func dialFrom(t *testing.T, ns *testNetns, network, laddr, raddr string) string {
	t.Helper()
	if r := dialFromOnce(t, ns, network, laddr, raddr); r != "timeout" {
		return r
	}
	return dialFromOnce(t, ns, network, laddr, raddr)
}

func dialFromOnce(t *testing.T, ns *testNetns, network, laddr, raddr string) string {
	t.Helper()
	d := net.Dialer{Timeout: 700 * time.Millisecond}
	if laddr != "" {
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(laddr), 0))
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(laddr), 0))
		}
	}
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = d.Dial(network, raddr) })
	switch {
	case err == nil:
		defer c.Close()
		c.Write([]byte("x"))
		return "ok"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(err.Error(), "timeout"):
		return "timeout"
	}
	return "error: " + err.Error()
}

func nothingOn[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Errorf("%s received %+v, want nothing", what, v)
	case <-time.After(150 * time.Millisecond):
	}
}

// TestForwardedTenant applies a forwarded tenant (interfaces "br-*",
// source ranges) on a host whose bridge has br_netfilter on, as Docker
// leaves it, and checks what a container gets: intercepted TCP is
// redirected to the tenant's listener port on the bridge address, other
// egress is rejected except allow_direct, the host's own addresses are
// internal, a spoofed source is dropped, and inbound flows get replies.
func TestForwardedTenant(t *testing.T) {
	f := newFwdTopo(t)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{{Name: "containers", Slot: 1, ListenerPort: 15001, Interfaces: []string{"br-*"},
		Sources:     []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("fd00:17::/64")},
		AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("198.51.100.53/32"), Ports: []uint16{53}, Proto: "udp"}}}}
	if err := f.host.manager(t).Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("host bridge-nf-call-iptables: %s", strings.TrimSpace(f.host.Run(t, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables")))
	listener := sink(listenTCP(t, f.host, ":15001", true)) // wildcard, transparent as egressfw's (see TestListenerPortSquatter)
	hostSSH := tcpSink(t, f.host, ":22")
	web, other := tcpSink(t, f.pub, ":80"), tcpSink(t, f.pub, ":8080")
	quic, dns := udpSink(t, f.pub, "198.51.100.10:443"), udpSink(t, f.pub, "198.51.100.53:53")
	inside := tcpSink(t, f.ctr, ":80")
	peer := newNetns(t, false) // a second container on the same bridge
	netnstest.Veth(t, netnstest.End{NS: f.host.Name, Dev: "vc2"}, netnstest.End{NS: peer.Name, Dev: "eth0", Addrs: []string{"172.17.0.3/16"}})
	f.host.Run(t, "ip", "link", "set", "vc2", "master", "br-t1")
	peerWeb := tcpSink(t, peer, ":80")

	intercepted := []struct{ name, raddr, wantLocal string }{
		{"public v4", "198.51.100.10:80", "172.17.0.1:15001"},
		{"public v6", "[2001:db8:1::10]:443", "[fd00:17::1]:15001"},
		{"bridge gateway", "172.17.0.1:80", "172.17.0.1:15001"},
		{"host uplink address", "198.51.100.1:443", "172.17.0.1:15001"},
	}
	for _, tc := range intercepted {
		t.Run("redirect "+tc.name, func(t *testing.T) {
			if got := dialFrom(t, f.ctr, "tcp", "", tc.raddr); got != "ok" {
				t.Fatalf("dial %s = %s, want ok (redirected)", tc.raddr, got)
			}
			select {
			case a := <-listener:
				if a.local != tc.wantLocal {
					t.Errorf("listener got local %s, want %s", a.local, tc.wantLocal)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the tenant's listener saw no connection")
			}
			nothingOn(t, "public :80", web)
		})
	}
	denied := []struct{ name, network, laddr, raddr, want string }{
		{"other TCP port", "tcp", "", "198.51.100.10:8080", "refused"},
		{"host service", "tcp", "", "172.17.0.1:22", "refused"},
		{"listener port directly", "tcp", "", "172.17.0.1:15001", "refused"},
		{"spoofed source", "tcp", "10.9.9.9", "198.51.100.10:8080", "timeout"},
	}
	for _, tc := range denied {
		t.Run("deny "+tc.name, func(t *testing.T) {
			if got := dialFrom(t, f.ctr, tc.network, tc.laddr, tc.raddr); got != tc.want {
				t.Fatalf("dial %s = %s, want %s", tc.raddr, got, tc.want)
			}
		})
	}
	nothingOn(t, "public :8080", other)
	nothingOn(t, "host :22", hostSSH)
	nothingOn(t, "listener", listener)

	t.Run("udp", func(t *testing.T) {
		dialFrom(t, f.ctr, "udp", "", "198.51.100.10:443")
		nothingOn(t, "public udp 443 (QUIC)", quic)
		dialFrom(t, f.ctr, "udp", "10.9.9.9", "198.51.100.53:53")
		nothingOn(t, "public DNS from a spoofed source", dns)
		dialFrom(t, f.ctr, "udp", "", "198.51.100.53:53")
		select {
		case <-dns:
		case <-time.After(2 * time.Second):
			t.Fatal("allow_direct DNS did not arrive")
		}
	})
	t.Run("same tenant is not egress", func(t *testing.T) {
		// Bridged under br_netfilter, so it meets the nat chain: not
		// redirected, not rejected.
		if got := dialFrom(t, f.ctr, "tcp", "", "172.17.0.3:80"); got != "ok" {
			t.Fatalf("container to container = %s, want ok", got)
		}
		select {
		case <-peerWeb:
		case <-time.After(2 * time.Second):
			t.Fatal("the other container saw no connection")
		}
		nothingOn(t, "listener", listener)
	})
	t.Run("inbound gets replies", func(t *testing.T) {
		if got := dialFrom(t, f.pub, "tcp", "", "172.17.0.2:80"); got != "ok" {
			t.Fatalf("public to container = %s, want ok", got)
		}
		select {
		case <-inside:
		case <-time.After(2 * time.Second):
			t.Fatal("container saw no inbound connection")
		}
	})
}

package nft

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// ctrTopo is a host namespace with a bridge br-c (172.18.0.1/24,
// fd00:18::1/64), as Docker wires a user network, and an uplink to an
// "out" namespace holding a public site (198.51.100.10, 2001:db8:1::10)
// and an internal service (10.20.0.20, the "wiki"). Containers are
// namespaces whose veth is a port of br-c.
type ctrTopo struct {
	host, out *testNetns
	brMAC     net.HardwareAddr
	m         *Manager
	spec      nftspec.Spec
}

// ctr is a container of a ctrTopo.
type ctr struct {
	ns       *testNetns
	port     string // the host side of its veth
	idx      int    // its ifindex
	mac      net.HardwareAddr
	ip4, ip6 netip.Addr
}

var brMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}

// containerSpec: the bridge's interface tenant may reach the public
// network with anything (so a spoofed packet that passed as its own would
// arrive), the labelled tenant "trusted" only the wiki's port 8080.
func containerSpec() nftspec.Spec {
	s := nftspec.DefaultSpec()
	s.Containers = true
	s.Tenants = []nftspec.Tenant{
		{Name: "containers", Slot: 1, ListenerPort: 15001, Interfaces: []string{"br-c"},
			Sources: []netip.Prefix{netip.MustParsePrefix("172.18.0.0/24"), netip.MustParsePrefix("fd00:18::/64")},
			AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
				{Prefix: netip.MustParsePrefix("2001:db8:1::/64")}}},
		{Name: "trusted", Slot: 2, ListenerPort: 15002, Labelled: true,
			AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("10.20.0.20/32"), Ports: []uint16{8080}, Proto: "tcp"}}},
	}
	return s
}

// newCtrTopo builds the topology with br_netfilter's bridge-nf-call
// sysctls of the host namespace on or off, and applies containerSpec.
func newCtrTopo(t testing.TB, brnf bool) *ctrTopo {
	t.Helper()
	tp := &ctrTopo{host: newNetns(t, false), out: newNetns(t, false), brMAC: brMAC, spec: containerSpec()}
	h, o := tp.host, tp.out
	on := map[bool]string{true: "1", false: "0"}[brnf]
	h.Run(t, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables="+on, "net.bridge.bridge-nf-call-ip6tables="+on,
		"net.bridge.bridge-nf-call-arptables="+on, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	h.Run(t, "ip", "link", "add", "br-c", "address", brMAC.String(), "type", "bridge")
	h.Run(t, "ip", "addr", "add", "172.18.0.1/24", "dev", "br-c")
	h.Run(t, "ip", "-6", "addr", "add", "fd00:18::1/64", "dev", "br-c", "nodad")
	h.Run(t, "ip", "link", "set", "br-c", "up")
	// fixed MACs and neighbour entries: no neighbour discovery on the
	// uplink while its link-local addresses are still tentative
	h.Run(t, "ip", "link", "add", "up0", "address", "02:00:00:00:01:01", "type", "veth",
		"peer", "name", "eth0", "address", "02:00:00:00:01:02", "netns", o.Name)
	for _, a := range []string{"198.51.100.10", "10.20.0.20", "2001:db8:1::10"} {
		h.Run(t, "ip", "neigh", "replace", a, "lladdr", "02:00:00:00:01:02", "dev", "up0", "nud", "permanent")
	}
	for _, a := range []string{"198.51.100.1", "2001:db8:1::1"} {
		o.Run(t, "ip", "neigh", "replace", a, "lladdr", "02:00:00:00:01:01", "dev", "eth0", "nud", "permanent")
	}
	h.Run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "up0")
	h.Run(t, "ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "up0", "nodad")
	h.Run(t, "ip", "link", "set", "up0", "up")
	h.Run(t, "ip", "route", "add", "10.20.0.0/24", "via", "198.51.100.10")
	o.Run(t, "ip", "link", "set", "eth0", "up")
	o.Run(t, "ip", "addr", "add", "198.51.100.10/24", "dev", "eth0")
	o.Run(t, "ip", "addr", "add", "10.20.0.20/32", "dev", "eth0")
	o.Run(t, "ip", "-6", "addr", "add", "2001:db8:1::10/64", "dev", "eth0", "nodad")
	o.Run(t, "ip", "route", "add", "172.18.0.0/24", "via", "198.51.100.1")
	o.Run(t, "ip", "-6", "route", "add", "fd00:18::/64", "via", "2001:db8:1::1")
	tp.m = h.manager(t)
	if err := tp.m.Apply(tp.spec, nil); err != nil {
		t.Fatal(err)
	}
	return tp
}

// container adds a container namespace on port (the host side of its
// veth) with 172.18.0.N and fd00:18::N, and MAC 02:00:00:00:00:N.
func (tp *ctrTopo) container(t testing.TB, port string, n byte) *ctr {
	t.Helper()
	c := &ctr{ns: newNetns(t, false), port: port, mac: net.HardwareAddr{2, 0, 0, 0, 0, n},
		ip4: netip.AddrFrom4([4]byte{172, 18, 0, n}), ip6: netip.MustParseAddr(fmt.Sprintf("fd00:18::%x", n))}
	h := tp.host
	h.Run(t, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", c.ns.Name)
	h.Run(t, "ip", "link", "set", port, "master", "br-c", "up")
	c.ns.Run(t, "ip", "link", "set", "eth0", "address", c.mac.String(), "up")
	c.ns.Run(t, "ip", "addr", "add", c.ip4.String()+"/24", "dev", "eth0")
	c.ns.Run(t, "ip", "-6", "addr", "add", c.ip6.String()+"/64", "dev", "eth0", "nodad")
	c.ns.Run(t, "ip", "route", "add", "default", "via", "172.18.0.1")
	c.ns.Run(t, "ip", "-6", "route", "add", "default", "via", "fd00:18::1")
	// nsenter keeps the caller's /sys: ask rtnetlink ("7: pa@if2: ...")
	idx, err := strconv.Atoi(strings.SplitN(h.Run(t, "ip", "-o", "link", "show", port), ":", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	c.idx = idx
	return c
}

// identity is c as SetContainers takes it.
func (c *ctr) identity(slot uint32) nftspec.Container {
	return nftspec.Container{Port: c.idx, MAC: c.mac, Addrs: []netip.Addr{c.ip4, c.ip6}, Slot: slot}
}

// countFrom (re)starts counting, in the out namespace, the packets of
// every protocol that arrive from each of addrs; the returned function
// reads the counts.
func (tp *ctrTopo) countFrom(t testing.TB, addrs ...netip.Addr) func() map[netip.Addr]int {
	t.Helper()
	var b strings.Builder
	b.WriteString("table inet count\ndelete table inet count\ntable inet count {\n chain pre {\n  type filter hook prerouting priority -400;\n")
	for _, a := range addrs {
		fam := map[bool]string{true: "ip", false: "ip6"}[a.Is4()]
		fmt.Fprintf(&b, "  %s saddr %s counter comment \"%s\"\n", fam, a, a)
	}
	b.WriteString(" }\n}\n")
	tp.out.nftScript(t, b.String())
	return func() map[netip.Addr]int {
		out := map[netip.Addr]int{}
		for _, m := range counted.FindAllStringSubmatch(tp.out.nft(t, "list", "table", "inet", "count"), -1) {
			n, _ := strconv.Atoi(m[1])
			out[netip.MustParseAddr(m[2])] = n
		}
		return out
	}
}

var counted = regexp.MustCompile(`packets (\d+) bytes \d+ comment "([^"]+)"`)

// neighbour is the host's neighbour entry for a on br-c ("" if none).
func (tp *ctrTopo) neighbour(t *testing.T, a netip.Addr) string {
	t.Helper()
	return strings.TrimSpace(tp.host.Run(t, "ip", "neigh", "show", a.String(), "dev", "br-c"))
}

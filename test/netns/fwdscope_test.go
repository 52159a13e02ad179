package netns

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// Addresses of TestForwardedScope: a Docker-like network (the README's
// 172.16.0.0/12 tenant range) that also carries IPv6 the range does not
// name, and a LAN host behind the host's own LAN interface whose addresses
// fall inside the containers' and the pods' ranges.
const (
	ipCtrGW   = "172.18.0.1"
	ipCtr1    = "172.18.0.2"
	ipCtr2    = "172.18.0.3"
	ip6Ctr1   = "fd00:99::2" // outside every range of the containers tenant
	llCtr1    = "fe80::c1"
	llCtr2    = "fe80::c2"
	llCtrGW   = "fe80::b1"
	ipLAN     = "172.24.0.10"  // in 172.16.0.0/12, on no bridge
	ipLANPod  = "10.42.200.10" // in the pods' 10.42.0.0/16, on no bridge
	ipPod2    = "10.42.0.6"
	ipVM2     = "192.168.122.11"
	ip6VM1    = "fd00:122::10"
	ip6VM2    = "fd00:122::11"
	llVM1     = "fe80::a1"
	llVirbr   = "fe80::a0"
	ipSpoofed = "10.99.0.9"
)

// scopeTenants: containers by interface with the README's range (IPv4
// only), VMs by interface with IPv4 and IPv6 ranges, pods by range only.
func scopeTenants() string {
	return fmt.Sprintf(`[[tenant]]
name = "containers"
interfaces = ["br-*"]
source_cidrs = ["172.16.0.0/12"]
  [[tenant.allow_direct]]
  cidr = "%[1]s/32"
  ports = [53]

[[tenant]]
name = "vms"
interfaces = ["virbr*"]
source_cidrs = ["192.168.122.0/24", "fd00:122::/64"]

[[tenant]]
name = "pods"
source_cidrs = ["10.42.0.0/16"]
`, ipDNS)
}

// TestForwardedScope: a forwarded tenant's source ranges exempt only the
// traffic that stays between its members, and its packets from outside
// those ranges are dropped in every protocol and family.
//
// A LAN host inside the containers' range (172.24.0.10) and one inside
// the pods' range get nothing: HTTP gets egressfw's 403 and a log line,
// other TCP a reset. Containers, VMs and pods still reach each other on
// any port (the VMs over IPv6, neighbour discovery included), a VM still
// gets a DHCP lease, and the VMs' DHCPv6 reaches the host.
//
// Before egressfw starts, every spoofing probe below arrives (so none can
// pass by failing for another reason); with egressfw, each is dropped:
// the container's IPv6 address on a bridge whose tenant lists only IPv4,
// its link-local address (to another container, to the host), and a
// spoofed IPv4 source, including one shaped as DHCP.
func TestForwardedScope(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	c1 := tp.guest("c1", "br-egfw", ipCtrGW, ipCtr1)
	c2 := tp.guest("c2", "br-egfw", ipCtrGW, ipCtr2)
	vm1 := tp.guest("vm1", vmBridge, ipVirbr, ipVM)
	vm2 := tp.guest("vm2", vmBridge, ipVirbr, ipVM2)
	pod1 := tp.guest("pod1", "cni0", ipCNI, ipPod)
	pod2 := tp.guest("pod2", "cni0", ipCNI, ipPod2)
	for _, a := range []struct{ ns, dev, addr string }{
		{tp.host, "br-egfw", "fd00:99::1/64"}, {c1.netns, "eth0", ip6Ctr1 + "/64"}, {c2.netns, "eth0", "fd00:99::3/64"},
		{tp.host, "br-egfw", llCtrGW + "/64"}, {c1.netns, "eth0", llCtr1 + "/64"}, {c2.netns, "eth0", llCtr2 + "/64"},
		{tp.host, vmBridge, "fd00:122::1/64"}, {vm1.netns, "eth0", ip6VM1 + "/64"}, {vm2.netns, "eth0", ip6VM2 + "/64"},
		{tp.host, vmBridge, llVirbr + "/64"}, {vm1.netns, "eth0", llVM1 + "/64"},
	} {
		tp.ip(a.ns, "-6", "addr", "add", a.addr, "dev", a.dev, "nodad")
	}
	tp.ip(c1.netns, "-6", "route", "add", "default", "via", "fd00:99::1")
	for _, vm := range []who{vm1, vm2} {
		tp.ip(vm.netns, "-6", "route", "add", "default", "via", "fd00:122::1")
	}
	tp.ip(c1.netns, "addr", "add", ipSpoofed+"/32", "dev", "eth0")
	tp.ip(tp.host, "route", "add", ipSpoofed+"/32", "via", ipCtr1) // so only egressfw stops it
	lan := netnstest.New(t, tp.id+"-lan").Name
	tp.link(lan, "vlan", []string{"172.24.0.1/24", "10.42.200.1/24"}, []string{ipLAN + "/24", ipLANPod + "/24"})
	tp.ip(lan, "route", "add", "default", "via", "172.24.0.1")
	netnstest.Output(t, nsCmd(tp.host, "sysctl", "-qw", "net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1", "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"))

	lanSrv := tp.startServer("lan", lan, map[string]any{"http": []string{":80"}, "raw": []string{":8080"}})
	atPub := tp.catch("public", tp.public, "tcp:8081", "udp:443")
	atC2 := tp.catch("c2", c2.netns, "tcp:80", "tcp:8080", "udp:5353")
	atHost := tp.catch("host", tp.host, "tcp:8443", "udp:67", "udp:547", "udp:5353")
	atLAN := tp.catch("lan", lan, "udp:67")
	atPod2 := tp.catch("pod2", pod2.netns, "tcp:80", "tcp:8080")
	atVM2 := tp.catch("vm2", vm2.netns, "tcp:80", "tcp:8080")

	outside := []probe{
		{"IPv6 outside the ranges, TCP 80", c1, "tcp", ip6Ctr1, 0, ip6Public, 80, nil},
		{"IPv6 outside the ranges, TCP 8081", c1, "tcp", ip6Ctr1, 0, ip6Public, 8081, atPub},
		{"IPv6 outside the ranges, UDP", c1, "udp", ip6Ctr1, 0, ip6Public, 443, atPub},
		{"IPv6 outside the ranges, ICMP", c1, "icmp", ip6Ctr1, 0, ip6Public, 0, nil},
		{"link-local to a container, TCP", c1, "tcp", llCtr1 + "%eth0", 0, llCtr2 + "%eth0", 8080, atC2},
		{"link-local to a container, UDP", c1, "udp", llCtr1 + "%eth0", 0, llCtr2 + "%eth0", 5353, atC2},
		{"link-local to a container, ICMP", c1, "icmp", llCtr1 + "%eth0", 0, llCtr2 + "%eth0", 0, nil},
		{"link-local to the host, TCP", c1, "tcp", llCtr1 + "%eth0", 0, llCtrGW + "%eth0", 8443, atHost},
		{"link-local to the host, UDP", c1, "udp", llCtr1 + "%eth0", 0, llCtrGW + "%eth0", 5353, atHost},
		{"link-local to the host, ICMP", c1, "icmp", llCtr1 + "%eth0", 0, llCtrGW + "%eth0", 0, nil},
		{"spoofed IPv4, TCP", c1, "tcp", ipSpoofed, 0, ipPublic, 8081, atPub},
		{"spoofed IPv4, UDP", c1, "udp", ipSpoofed, 0, ipPublic, 443, atPub},
		{"spoofed IPv4, ICMP", c1, "icmp", ipSpoofed, 0, ipPublic, 0, nil},
		{"spoofed IPv4 shaped as DHCP, to a LAN host", c1, "udp", ipSpoofed, 68, ipLAN, 67, atLAN},
		{"spoofed IPv4 shaped as DHCP, to the host", c1, "udp", ipSpoofed, 68, ipHostInt, 67, atHost},
	}
	t.Run("without egressfw every probe arrives", func(t *testing.T) {
		for _, p := range outside {
			tp.expectProbe(t, p, "reached")
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.defaultTenants() + scopeTenants()}))
	t.Run("from outside the ranges", func(t *testing.T) {
		for _, p := range outside {
			t.Run(p.name, func(t *testing.T) { tp.expectProbe(t, p, "dropped") })
		}
		t.Run("link-local to the host, TCP 80", func(t *testing.T) {
			tp.expectProbe(t, probe{"link-local to the host, TCP 80", c1, "tcp", llCtr1 + "%eth0", 0, llCtrGW + "%eth0", 80, nil}, "dropped")
		})
	})

	t.Run("LAN host inside the range", func(t *testing.T) {
		i := d.since()
		runCases(t, tp, []who{c1}, []curlCase{
			{"port 80", args("http://" + ipLAN + "/"), deniedInt},
			{"port 8080", args("http://" + ipLAN + ":8080/"), reset},
		})
		runCases(t, tp, []who{pod1}, []curlCase{
			{"port 80", args("http://" + ipLANPod + "/"), deniedInt},
			{"port 8080", args("http://" + ipLANPod + ":8080/"), reset},
		})
		for _, c := range []struct{ tenant, dst string }{{"containers", ipLAN}, {"pods", ipLANPod}} {
			if _, ok := d.waitLogFrom(i, func(l logLine) bool {
				return l.str("tenant") == c.tenant && l.str("orig_dst") == c.dst+":80" && l.str("decision") == "deny"
			}, 3*time.Second); !ok {
				t.Errorf("no deny line for %s to %s:80", c.tenant, c.dst)
			}
		}
		if n := lanSrv.conns(""); n != 0 {
			t.Errorf("the LAN host accepted %d connections, want 0", n)
		}
	})

	t.Run("between members", func(t *testing.T) {
		for _, p := range []probe{
			{"container to container, TCP 80", c1, "tcp", "", 0, ipCtr2, 80, atC2},
			{"container to container, TCP 8080", c1, "tcp", "", 0, ipCtr2, 8080, atC2},
			{"pod to pod, TCP 80", pod1, "tcp", "", 0, ipPod2, 80, atPod2},
			{"pod to pod, TCP 8080", pod1, "tcp", "", 0, ipPod2, 8080, atPod2},
			{"VM to VM over IPv6, TCP 80", vm1, "tcp", "", 0, ip6VM2, 80, atVM2},
			{"VM to VM over IPv6, TCP 8080", vm1, "tcp", "", 0, ip6VM2, 8080, atVM2},
			{"VM DHCPv6 from link-local to the host", vm1, "udp", llVM1 + "%eth0", 546, llVirbr + "%eth0", 547, atHost},
		} {
			t.Run(p.name, func(t *testing.T) { tp.expectProbe(t, p, "reached") })
		}
		check(t, "VM to the public site over IPv6", tp.curl(vm1, args("-6", resolve("www.example.com", "80", ip6Public), "http://www.example.com/")...), okPublic)
	})
	t.Run("VM gets a DHCP lease", func(t *testing.T) { tp.dhcpLease(t, vm2) })
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// dhcpLease runs busybox udhcpd on the host's VM bridge and udhcpc in vm,
// which must get a lease: DHCP from 0.0.0.0 passes the spoofing check.
func (tp *topo) dhcpLease(t *testing.T, vm who) {
	t.Helper()
	conf := tp.file("udhcpd.conf")
	body := fmt.Sprintf("start 192.168.122.100\nend 192.168.122.110\ninterface %s\nlease_file %s\npidfile %s\noption subnet 255.255.255.0\n",
		vmBridge, tp.file("udhcpd.leases"), tp.file("udhcpd.pid"))
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := nsCmd(tp.host, "busybox", "udhcpd", "-f", conf)
	var srvOut strings.Builder
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(200 * time.Millisecond)
	r := tp.run(vm, 20*time.Second, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "4", "-T", "1", "-s", "/bin/true")
	if r.code != 0 || !strings.Contains(r.out+r.errOut, "obtained") {
		t.Errorf("udhcpc in %s: exit %d: %s%s\nudhcpd: %s", vm.label, r.code, r.out, r.errOut, srvOut.String())
	}
}

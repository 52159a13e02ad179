package netns

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// Addresses of the forwarded tenants' networks.
const (
	ipVirbr  = "192.168.122.1" // libvirt's default bridge, on the host
	ipVM     = "192.168.122.10"
	ipCNI    = "10.42.0.1" // k3s's cni0, on the host
	ipPod    = "10.42.0.5"
	ipSpoof  = "10.99.0.9" // an address the VM has no right to
	vmBridge = "virbr0"
)

// guest is a namespace behind a bridge of the host namespace with a default
// route through the host, as libvirt, incus and the k3s bridge CNI wire VMs
// and pods. It is deleted at cleanup.
func (tp *topo) guest(name, bridge, gw, addr string) who {
	tp.t.Helper()
	ns := netnstest.New(tp.t, tp.id+"-"+name).Name
	if !strings.Contains(tp.ip(tp.host, "-br", "link", "show", "type", "bridge"), bridge) {
		tp.ip(tp.host, "link", "add", bridge, "type", "bridge")
		tp.ip(tp.host, "addr", "add", gw+"/24", "dev", bridge)
		tp.ip(tp.host, "link", "set", bridge, "up")
	}
	port := "v" + name
	netnstest.Veth(tp.t, netnstest.End{NS: tp.host, Dev: port}, netnstest.End{NS: ns, Dev: "eth0", Addrs: []string{addr + "/24"}})
	tp.ip(tp.host, "link", "set", port, "master", bridge)
	tp.ip(ns, "route", "add", "default", "via", gw)
	return who{label: name, netns: ns}
}

// forwardedTenants: VMs by bridge interface (prefix) and source range,
// pods by source range only (reverse-path checked); both may use the
// internal DNS directly.
func forwardedTenants() string {
	return fmt.Sprintf(`[[tenant]]
name = "vms"
interfaces = ["virbr*"]
source_cidrs = ["192.168.122.0/24"]
  [[tenant.allow_direct]]
  cidr = "%[1]s/32"
  ports = [53]

[[tenant]]
name = "pods"
source_cidrs = ["10.42.0.0/24"]
  [[tenant.allow_direct]]
  cidr = "%[1]s/32"
  ports = [53]
`, ipDNS)
}

// TestForwardedVMAndPod: a VM-style namespace behind virbr0 and a pod-style
// one behind cni0, routed (not NATed) through the host, where br_netfilter
// is on as Docker leaves it. They reach the public site by name over HTTP
// and HTTPS through the listener; the split-horizon service, the metadata
// address, the host's own addresses and their bridge gateway are refused;
// other TCP and UDP (QUIC) are rejected; a spoofed source is dropped. The
// log names tenant, source and ingress interface; the internal servers see
// nothing.
func TestForwardedVMAndPod(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	vm := tp.guest("vm", vmBridge, ipVirbr, ipVM)
	pod := tp.guest("pod", "cni0", ipCNI, ipPod)
	tp.ip(vm.netns, "addr", "add", ipSpoof+"/32", "dev", "eth0")
	tp.ip(tp.host, "route", "add", ipSpoof+"/32", "via", ipVM) // so only egressfw stops it
	netnstest.Output(t, nsCmd(tp.host, "sysctl", "-qw", "net.ipv4.ip_forward=1",
		"net.bridge.bridge-nf-call-iptables=1"))
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.defaultTenants() + forwardedTenants()}))

	cases := []curlCase{
		{"public by name", args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/"), okPublic},
		{"public by name over TLS", args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/"), okPublic},
		{"split-horizon name", args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/"), deniedInt},
		{"split-horizon name over TLS", args(resolve("bi-tool.example.com", "443", ipBITool), "https://bi-tool.example.com/"), tlsDenied},
		{"public name aimed at the internal IP", args(resolve("www.example.com", "80", ipBITool), "http://www.example.com/"), okPublic},
		{"metadata", args("http://" + ipMetadata + "/latest/meta-data/"), deniedInt},
		{"host's public address", args("http://" + ipHostPub + "/"), deniedInt},
		{"host's internal address", args("http://" + ipHostInt + "/"), deniedInt},
		{"VM bridge gateway", args("http://" + ipVirbr + "/"), deniedInt},
		{"pod bridge gateway", args("http://" + ipCNI + "/"), deniedInt},
		{"other TCP port", args("http://" + ipPublic + ":8080/"), reset},
		// allow_direct: connected, then curl's telnet waits until -m.
		{"allow_direct DNS over TCP", args("-m", "1", "telnet://"+ipDNS+":53"), want{exit: 28, stderr: "(28) time-out"}},
	}
	runCases(t, tp, []who{vm, pod}, cases)

	t.Run("spoofed source", func(t *testing.T) {
		r := tp.curl(vm, "--interface", ipSpoof, "-m", "2", "http://"+ipPublic+":8080/")
		check(t, "spoofed", r, want{exit: 28, stderr: "connection timed out"})
	})
	t.Run("udp", func(t *testing.T) {
		if !udpReaches(t, tp, nonTenant(), ipPublic, 443) {
			t.Fatal("a non-tenant's datagram did not arrive: the receiver does not work")
		}
		for _, w := range []who{vm, pod} {
			if got := udpReaches(t, tp, w, ipPublic, 443); got {
				t.Errorf("%s: UDP 443 (QUIC) reached the public site", w.label)
			}
		}
	})
	t.Run("log names tenant, source and interface", func(t *testing.T) {
		for _, c := range []struct{ tenant, src, iif string }{{"vms", ipVM, vmBridge}, {"pods", ipPod, "cni0"}} {
			l, ok := d.waitLog(func(l logLine) bool {
				return l.str("tenant") == c.tenant && strings.HasPrefix(l.str("src"), c.src+":") && l.str("iif") == c.iif &&
					l.str("decision") == "allow" && l.str("name") == "www.example.com"
			}, 3*time.Second)
			if !ok {
				t.Errorf("no allow line for %s from %s on %s", c.tenant, c.src, c.iif)
			} else if l.str("orig_dst") != ipPublic+":80" && l.str("orig_dst") != ipPublic+":443" {
				t.Errorf("orig_dst = %s, want the public site", l.str("orig_dst"))
			}
		}
	})
	tp.settleServers() // a late event must not pass for none
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal namespace accepted %d connections, want 0", n)
	}
	// VM and pod: HTTP, HTTPS and the public name aimed at the internal IP.
	tp.pub.atLeast(func() int { return tp.pub.requests("") }, 6)
	if n := tp.pub.requests(""); n != 6 {
		t.Errorf("public site served %d requests, want 6", n)
	}
	if n := tp.pub.conns(""); n != 6 {
		t.Errorf("public site accepted %d connections, want 6 (nothing else got through)", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// udpReaches sends a datagram from w to ip:port and reports whether a
// receiver in the public namespace got it.
func udpReaches(t *testing.T, tp *topo, w who, ip string, port int) bool {
	t.Helper()
	recv := nsCmd(tp.public, "python3", "-c", fmt.Sprintf(`import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("%s",%d)); s.settimeout(1.5); print("ready",flush=True)
try: s.recvfrom(100); print("got")
except socket.timeout: print("none")`, ip, port))
	out, err := recv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	out.Read(buf) // "ready\n"
	send, closeFD := tp.command(w, "python3", "-c", fmt.Sprintf(
		`import socket; socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b"quic",("%s",%d))`, ip, port))
	defer closeFD()
	send.Run()
	rest := make([]byte, 16)
	n, _ := out.Read(rest)
	recv.Wait()
	return strings.Contains(string(rest[:n]), "got")
}

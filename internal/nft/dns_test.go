package nft

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/egressfw/egressfw/internal/netnstest"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// asked is a query a test DNS server answered.
type asked struct {
	local, remote string // as the server's socket saw them
	orig          string // the flow's original destination, from conntrack
}

// dnsServe answers every query on addr inside ns, over UDP and TCP, with
// "A answer", reporting each on the returned channel. transparent makes
// the sockets transparent (as egressfw's listeners); otherwise they are
// plain (a local user's, or a resolver of the host).
func dnsServe(t *testing.T, ns *testNetns, addr, answer string, transparent bool) <-chan asked {
	t.Helper()
	ch := make(chan asked, 32)
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		local, orig := origDst(h, w.LocalAddr(), w.RemoteAddr())
		ch <- asked{local: local, remote: w.RemoteAddr().String(), orig: orig}
		m := new(dns.Msg).SetReply(req)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.ParseIP(answer)})
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		if !transparent {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			if strings.HasSuffix(network, "6") {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	network := "udp4"
	if strings.HasPrefix(addr, "[") {
		network = "udp6"
	}
	ns.Do(t, func() { pc, err = lc.ListenPacket(context.Background(), network, addr) })
	if err != nil {
		t.Fatal(err)
	}
	ln := listenTCP(t, ns, addr, transparent)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return ch
}

// origDst finds the conntrack entry whose reply tuple is the server's view
// (local to remote; a wildcard local address matches any) and returns its
// reply source (the address the query reached) and original destination.
func origDst(h *netlink.Handle, local, remote net.Addr) (string, string) {
	l, r := addrPortOf(local), addrPortOf(remote)
	fam := netlink.InetFamily(unix.AF_INET)
	if l.Addr().Is6() {
		fam = unix.AF_INET6
	}
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, fam)
	if err != nil {
		return "", "error: " + err.Error()
	}
	for _, f := range flows {
		src, _ := netip.AddrFromSlice(f.Reverse.SrcIP)
		dst, _ := netip.AddrFromSlice(f.Reverse.DstIP)
		if (l.Addr().IsUnspecified() || src.Unmap() == l.Addr()) && f.Reverse.SrcPort == l.Port() &&
			dst.Unmap() == r.Addr() && f.Reverse.DstPort == r.Port() {
			return netip.AddrPortFrom(src.Unmap(), l.Port()).String(), net.JoinHostPort(f.Forward.DstIP.String(), fmt.Sprint(f.Forward.DstPort))
		}
	}
	return l.String(), "not found"
}

func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch v := a.(type) {
	case *net.UDPAddr:
		ap = v.AddrPort()
	case *net.TCPAddr:
		ap = v.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// dnsClient asks server for name over network from ns (as a tenant when c
// says so) with a connected socket, so only a reply from the address it
// queried is accepted; it returns the answer's address or "ERR ...".
func dnsClient(t *testing.T, ns *testNetns, c client, network, server string) string {
	t.Helper()
	if c.cgroup != "" || c.fsuid != 0 {
		return runClient(t, ns, c, "dns+"+network, server, "x")
	}
	var out string
	ns.Do(t, func() { out = dnsExchange(network, server) })
	return out
}

// dnsExchange is the helper's "dns+udp" and "dns+tcp" modes.
func dnsExchange(network, server string) string {
	cl := dns.Client{Net: network, Timeout: 700 * time.Millisecond}
	m := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
	r, _, err := cl.Exchange(m, server)
	if err != nil {
		return "ERR " + err.Error()
	}
	if len(r.Answer) != 1 {
		return fmt.Sprintf("ERR rcode %d, %d answers", r.Rcode, len(r.Answer))
	}
	return "OK " + r.Answer[0].(*dns.A).A.String()
}

// expectAsked checks what a server was asked, or that it was asked nothing.
func expectAsked(t *testing.T, what string, ch <-chan asked, local, orig string) {
	t.Helper()
	if local == "" {
		nothingOn(t, what, ch)
		return
	}
	select {
	case a := <-ch:
		if a.local != local || a.orig != orig {
			t.Errorf("%s: local %s original destination %s, want %s and %s", what, a.local, a.orig, local, orig)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("%s was asked nothing", what)
	}
}

// TestTenantDNSLocal: a local tenant's DNS to any address and port 53,
// UDP and TCP, IPv4 and IPv6, reaches its own DNS listener, with the
// original destination in conntrack, and the answer comes back from the
// address the tenant asked (the client's connected socket takes nothing
// else; dig checks it too). The host's resolver on 127.0.0.53 answers
// non-tenants and a tenant with dns = "direct" as before; DNS over TLS
// stays denied.
func TestTenantDNSLocal(t *testing.T) {
	ns := newNetns(t, true)
	ns.Run(t, "ip", "addr", "add", "127.0.0.53/8", "dev", "lo")
	mnt, root := testCgroups(t)
	for _, d := range []string{"a", "d", "other"} {
		if err := os.Mkdir(filepath.Join(mnt, root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	resolver53 := []nftspec.Direct{{Prefix: netip.MustParsePrefix("127.0.0.53/32"), Ports: []uint16{53}}}
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{
		{Name: "a", Slot: 1, ListenerPort: 15001, Cgroups: []string{root + "/a"}, DNS: nftspec.DNSIntercept, DNSPort: 25001, AllowDirect: resolver53},
		{Name: "b", Slot: 2, ListenerPort: 15002, UIDs: []uint32{4242}, DNS: nftspec.DNSIntercept, DNSPort: 25002},
		{Name: "d", Slot: 4, ListenerPort: 15004, Cgroups: []string{root + "/d"}, AllowDirect: resolver53},
	}
	ids := nftspec.CgroupIDs{}
	for _, c := range []string{"a", "d"} {
		ids[root+"/"+c] = cgroupID(t, filepath.Join(mnt, root, c))
	}
	if err := ns.manager(t).Apply(spec, ids); err != nil {
		t.Fatal(err)
	}
	lis := map[string]<-chan asked{}
	for _, a := range []string{"127.0.0.1:25001", "[::1]:25001", "127.0.0.1:25002", "[::1]:25002"} {
		lis[a] = dnsServe(t, ns, a, "192.0.2.99", true)
	}
	host := dnsServe(t, ns, "127.0.0.53:53", "203.0.113.1", false)
	dot := tcpSink(t, ns, "198.51.100.1:853")
	cg := func(d string) client { return client{cgroup: filepath.Join(mnt, root, d)} }

	tests := []struct {
		name, network, server string
		c                     client
		want                  string // the answer, or an error's words
		listener, local       string // the listener that must be asked, and what it sees
		hostAsked             bool
	}{
		{"cgroup tenant, UDP to a foreign resolver", "udp", "198.51.100.53:53", cg("a"), "OK 192.0.2.99", "127.0.0.1:25001", "127.0.0.1:25001", false},
		{"cgroup tenant, TCP over IPv6", "tcp", "[2001:db8::53]:53", cg("a"), "OK 192.0.2.99", "[::1]:25001", "[::1]:25001", false},
		{"cgroup tenant with allow_direct to the host's resolver", "udp", "127.0.0.53:53", cg("a"), "OK 192.0.2.99", "127.0.0.1:25001", "127.0.0.1:25001", false},
		{"uid tenant, UDP to the host's resolver", "udp", "127.0.0.53:53", client{fsuid: 4242}, "OK 192.0.2.99", "127.0.0.1:25002", "127.0.0.1:25002", false},
		{"uid tenant, TCP", "tcp", "198.51.100.53:53", client{fsuid: 4242}, "OK 192.0.2.99", "127.0.0.1:25002", "127.0.0.1:25002", false},
		{"dns = direct tenant: the host's resolver", "udp", "127.0.0.53:53", cg("d"), "OK 203.0.113.1", "", "", true},
		{"dns = direct tenant: nothing else", "udp", "198.51.100.53:53", cg("d"), "ERR", "", "", false},
		{"non-tenant untouched", "udp", "127.0.0.53:53", cg("other"), "OK 203.0.113.1", "", "", true},
		{"non-tenant uid untouched", "tcp", "127.0.0.53:53", client{fsuid: 4243}, "OK 203.0.113.1", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := dnsClient(t, ns, tc.c, tc.network, tc.server)
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("client: %s, want %s", got, tc.want)
			}
			if tc.listener != "" {
				expectAsked(t, "listener "+tc.listener, lis[tc.listener], tc.local, tc.server)
			}
			for a, ch := range lis {
				expectAsked(t, "listener "+a, ch, "", "")
			}
			if tc.hostAsked {
				expectAsked(t, "host resolver", host, "127.0.0.53:53", "127.0.0.53:53")
			}
			expectAsked(t, "host resolver", host, "", "")
		})
	}
	t.Run("dig checks the reply's source", func(t *testing.T) {
		for _, args := range [][]string{{"@198.51.100.53"}, {"@2001:db8::53", "+tcp"}} {
			out := runIn(t, ns, cg("a"), append([]string{"dig", "+short", "+tries=1", "+time=2", "www.example.com"}, args...)...)
			if strings.TrimSpace(out) != "192.0.2.99" {
				t.Errorf("dig %v: %q, want 192.0.2.99", args, out)
			}
			<-lis[map[bool]string{true: "[::1]:25001", false: "127.0.0.1:25001"}[strings.Contains(args[0], ":")]]
		}
	})
	t.Run("DNS over TLS stays denied", func(t *testing.T) {
		if got := runClient(t, ns, cg("a"), "tcp", "198.51.100.1:853", "dot"); !strings.Contains(got, "connection refused") {
			t.Fatalf("client: %s, want connection refused", got)
		}
		nothingOn(t, "DoT server", dot)
	})
}

// runIn runs argv inside ns and the client's cgroup and returns its output.
func runIn(t *testing.T, ns *testNetns, c client, argv ...string) string {
	t.Helper()
	cmd := ns.Cmd(argv...)
	if c.cgroup != "" {
		closeFD, err := netnstest.IntoCgroup(cmd, c.cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFD()
	}
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestTenantDNSSquatter: with egressfw's DNS listeners gone, a local
// user's plain sockets on the DNS ports receive nothing a tenant sends, a
// local tenant's (uid) or a forwarded one's, over UDP and TCP.
func TestTenantDNSSquatter(t *testing.T) {
	f := newFwdTopo(t)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{
		{Name: "containers", Slot: 1, ListenerPort: 15001, Interfaces: []string{"br-*"}, DNS: nftspec.DNSIntercept, DNSPort: 25001,
			Sources: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("fd00:17::/64")}},
		{Name: "local", Slot: 2, ListenerPort: 15002, UIDs: []uint32{4242}, DNS: nftspec.DNSIntercept, DNSPort: 25002},
	}
	if err := f.host.manager(t).Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	public := dnsServe(t, f.pub, "198.51.100.53:53", "203.0.113.1", false)
	var squat []<-chan asked
	for _, a := range []string{"0.0.0.0:25001", "127.0.0.1:25002", "[::1]:25002"} {
		squat = append(squat, dnsServe(t, f.host, a, "198.18.0.66", false))
	}
	for _, network := range []string{"udp", "tcp"} {
		if got := dnsClient(t, f.ctr, client{}, network, "198.51.100.53:53"); !strings.HasPrefix(got, "ERR") {
			t.Errorf("container, %s, with a squatter on the DNS port: %s, want no answer", network, got)
		}
		if got := dnsClient(t, f.host, client{fsuid: 4242}, network, "198.51.100.53:53"); !strings.HasPrefix(got, "ERR") {
			t.Errorf("local tenant, %s, with a squatter on the DNS port: %s, want no answer", network, got)
		}
	}
	for i, ch := range squat {
		nothingOn(t, fmt.Sprintf("squatter %d", i), ch)
	}
	nothingOn(t, "public resolver", public)
}

// TestTenantDNSForwarded: a container's DNS to a foreign resolver, UDP
// and TCP, IPv4 and IPv6, is answered by the tenant's DNS listener on the
// bridge address, from the address it asked; the public resolver sees
// nothing, and DNS over TLS is rejected.
func TestTenantDNSForwarded(t *testing.T) {
	f := newFwdTopo(t)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{{Name: "containers", Slot: 1, ListenerPort: 15001, Interfaces: []string{"br-*"}, DNS: nftspec.DNSIntercept, DNSPort: 25001,
		Sources:     []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("fd00:17::/64")},
		AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("198.51.100.53/32"), Ports: []uint16{53}}}}}
	if err := f.host.manager(t).Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	// Wildcard, as egressfw binds a forwarded tenant's listener: the
	// redirect goes to the ingress interface's address. The server
	// replies from the address each query reached (IP_PKTINFO).
	lis4 := dnsServe(t, f.host, "0.0.0.0:25001", "192.0.2.99", true)
	lis6 := dnsServe(t, f.host, "[::]:25001", "192.0.2.99", true)
	public := dnsServe(t, f.pub, "198.51.100.53:53", "203.0.113.1", false)
	dot := tcpSink(t, f.pub, "198.51.100.53:853")
	for _, tc := range []struct {
		network, server, local string
		lis                    <-chan asked
	}{
		{"udp", "198.51.100.53:53", "172.17.0.1:25001", lis4},
		{"tcp", "198.51.100.53:53", "172.17.0.1:25001", lis4},
		{"udp", "[2001:db8:1::10]:53", "[fd00:17::1]:25001", lis6},
		{"tcp", "[2001:db8:1::10]:53", "[fd00:17::1]:25001", lis6},
	} {
		t.Run(tc.network+" "+tc.server, func(t *testing.T) {
			if got := dnsClient(t, f.ctr, client{}, tc.network, tc.server); got != "OK 192.0.2.99" {
				t.Fatalf("container: %s, want the listener's answer", got)
			}
			expectAsked(t, "listener", tc.lis, tc.local, tc.server)
		})
	}
	nothingOn(t, "public resolver (an allow_direct entry does not bypass egressfw's DNS)", public)
	if got := dialFrom(t, f.ctr, "tcp", "", "198.51.100.53:853"); got != "refused" {
		t.Errorf("DNS over TLS: %s, want refused", got)
	}
	nothingOn(t, "DoT server", dot)
}

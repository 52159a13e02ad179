package nft

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// accepted is a connection a transparent test listener took.
type accepted struct {
	port    uint16 // listener port
	local   string // the connection's local address: the client's original destination
	payload string
}

// transparentListen opens IP_TRANSPARENT listeners on 127.0.0.1:port and
// [::1]:port inside ns, reporting every connection on the returned channel.
func transparentListen(t *testing.T, ns *testNetns, ports ...uint16) <-chan accepted {
	t.Helper()
	ch := make(chan accepted, 16)
	for _, port := range ports {
		for _, addr := range []string{"127.0.0.1", "::1"} {
			go serveSink(listenTCP(t, ns, net.JoinHostPort(addr, fmt.Sprint(port)), true), port, ch)
		}
	}
	return ch
}

// udpSink receives datagrams on addr inside ns.
func udpSink(t *testing.T, ns *testNetns, addr string) <-chan string {
	return udpListen(t, ns, addr, false)
}

// udpListen receives datagrams on addr inside ns and reports their payloads;
// with echo it answers each one, so conntrack sees the flow as established.
func udpListen(t *testing.T, ns *testNetns, addr string, echo bool) <-chan string {
	t.Helper()
	var pc net.PacketConn
	var err error
	ns.Do(t, func() { pc, err = net.ListenPacket("udp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if echo {
				_, _ = pc.WriteTo(buf[:n], from)
			}
			ch <- string(buf[:n])
		}
	}()
	return ch
}

// tcpSink is a plain (not transparent) listener inside ns.
func tcpSink(t *testing.T, ns *testNetns, addr string) <-chan accepted {
	t.Helper()
	return sink(listenTCP(t, ns, addr, false))
}

// sink reports the local address and first bytes of every connection ln
// accepts.
func sink(ln net.Listener) <-chan accepted {
	ch := make(chan accepted, 16)
	go serveSink(ln, 0, ch)
	return ch
}

// serveSink reports on ch every connection ln accepts, as one to port.
func serveSink(ln net.Listener, port uint16, ch chan<- accepted) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _ := c.Read(buf)
		ch <- accepted{port: port, local: c.LocalAddr().String(), payload: string(buf[:n])}
		c.Close()
	}
}

// TestTraffic runs real clients in a test cgroup and namespace against the
// applied ruleset: interception to the tenant's own listener port (which
// proves the ct mark survives the loop through lo), default deny, uid
// and uid-range matching, allow_direct, report mode and direct-to-listener rejection.
func TestTraffic(t *testing.T) {
	ns := newNetns(t, true)
	mnt, root := testCgroups(t)
	for _, d := range []string{"a", "a/worker", "c", "d", "other"} {
		if err := os.Mkdir(filepath.Join(mnt, root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{
		{Name: "a", Slot: 1, ListenerPort: 15001, Cgroups: []string{root + "/a"},
			AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("127.0.0.53/32"), Ports: []uint16{53}}}},
		{Name: "b", Slot: 7, ListenerPort: 15007, UIDs: []uint32{4242}, UIDRanges: []nftspec.UIDRange{{First: 300000, Last: 365535}}},
		{Name: "c", Slot: 3, ListenerPort: 15003, Report: true, Cgroups: []string{root + "/c"}},
		{Name: "d", Slot: 4, ListenerPort: 15004, Cgroups: []string{root + "/d"}}, // no listener: fail closed
	}
	ids := nftspec.CgroupIDs{}
	for _, c := range []string{"a", "c", "d"} {
		ids[root+"/"+c] = cgroupID(t, filepath.Join(mnt, root, c))
	}
	if err := ns.manager(t).Apply(spec, ids); err != nil {
		t.Fatal(err)
	}
	listeners := transparentListen(t, ns, 15001, 15003, 15007)
	udp := map[string]<-chan string{}
	for _, a := range []string{"198.51.100.1:5353", "198.51.100.1:443", "127.0.0.53:53"} {
		udp[a] = udpSink(t, ns, a)
	}
	dns := tcpSink(t, ns, "127.0.0.53:53")

	cg := func(d string) client { return client{cgroup: filepath.Join(mnt, root, d)} }
	tests := []struct {
		name    string
		c       client
		network string
		addr    string
		want    string // "intercept PORT", "refused", "unanswered", "delivered", "blocked", "connected"
	}{
		{"cgroup tenant v4 to 80", cg("a"), "tcp", "192.0.2.10:80", "intercept 15001"},
		{"cgroup tenant in sub-cgroup v6 to 443", cg("a/worker"), "tcp", "[2001:db8::10]:443", "intercept 15001"},
		{"uid tenant v4 to 443", client{fsuid: 4242}, "tcp", "192.0.2.10:443", "intercept 15007"},
		{"uid tenant v6 to 80", client{fsuid: 4242}, "tcp", "[2001:db8::10]:80", "intercept 15007"},
		{"report tenant to 80", cg("c"), "tcp", "192.0.2.10:80", "intercept 15003"},
		{"non-tenant cgroup to 80", cg("other"), "tcp", "192.0.2.10:80", "unanswered"},
		{"non-tenant uid to 80", client{fsuid: 4243}, "tcp", "192.0.2.10:80", "unanswered"},
		{"sub-uid of the uid tenant to 80", client{fsuid: 300999}, "tcp", "192.0.2.10:80", "intercept 15007"},
		{"last sub-uid of the range to 443", client{fsuid: 365535}, "tcp", "192.0.2.10:443", "intercept 15007"},
		{"uid past the range to 80", client{fsuid: 365536}, "tcp", "192.0.2.10:80", "unanswered"},
		{"sub-uid other tcp port", client{fsuid: 300000}, "tcp", "192.0.2.10:8443", "refused"},
		{"tenant other tcp port", cg("a"), "tcp", "192.0.2.10:22", "refused"},
		{"uid tenant other tcp port", client{fsuid: 4242}, "tcp", "192.0.2.10:8443", "refused"},
		{"tenant without listener fails closed", cg("d"), "tcp", "192.0.2.10:443", "refused"},
		{"tenant udp", cg("a"), "udp", "198.51.100.1:5353", "blocked"},
		{"tenant quic", cg("a"), "udp", "198.51.100.1:443", "blocked"},
		{"non-tenant udp", cg("other"), "udp", "198.51.100.1:5353", "delivered"},
		{"report tenant udp", cg("c"), "udp", "198.51.100.1:5353", "delivered"},
		{"allow_direct udp", cg("a"), "udp", "127.0.0.53:53", "delivered"},
		{"allow_direct tcp", cg("a"), "tcp", "127.0.0.53:53", "connected"},
		{"non-tenant straight to listener port", cg("other"), "tcp", "127.0.0.1:15001", "refused"},
		{"tenant straight to listener port", cg("a"), "tcp", "[::1]:15001", "refused"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := fmt.Sprintf("case%d", i)
			got := runClient(t, ns, tc.c, tc.network, tc.addr, payload)
			checkOutcome(t, tc.want, tc.addr, payload, got, listeners, udp[tc.addr], dns)
		})
	}
}

func checkOutcome(t *testing.T, want, addr, payload, got string, listeners <-chan accepted, udp <-chan string, dns <-chan accepted) {
	t.Helper()
	wantKind, wantPort, _ := strings.Cut(want, " ")
	switch wantKind {
	case "intercept":
		if !strings.HasPrefix(got, "OK") {
			t.Fatalf("client: %s, want a connection", got)
		}
		select {
		case a := <-listeners:
			if fmt.Sprint(a.port) != wantPort || a.local != addr || a.payload != payload {
				t.Fatalf("listener got %+v, want port %s local %s payload %s", a, wantPort, addr, payload)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no listener accepted the connection")
		}
	case "refused":
		if !strings.Contains(got, "connection refused") {
			t.Fatalf("client: %s, want connection refused", got)
		}
	case "unanswered":
		if !strings.Contains(got, "timeout") {
			t.Fatalf("client: %s, want a timeout", got)
		}
	case "connected":
		if !strings.HasPrefix(got, "OK") {
			t.Fatalf("client: %s, want a connection", got)
		}
		if a := <-dns; a.payload != payload {
			t.Fatalf("direct listener got %+v", a)
		}
	case "delivered", "blocked":
		arrived := false
		timeout := time.After(300 * time.Millisecond)
	wait:
		for {
			select {
			case p := <-udp:
				arrived = arrived || p == payload // others are earlier cases' second sends
			case <-timeout:
				break wait
			}
		}
		if arrived != (wantKind == "delivered") {
			t.Fatalf("datagram arrived: %v (client: %s), want %s", arrived, got, want)
		}
		if wantKind == "blocked" && !strings.Contains(got, "operation not permitted") && !strings.Contains(got, "unreachable") {
			t.Fatalf("client: %s, want the send to fail", got)
		}
	}
	select {
	case a := <-listeners:
		t.Fatalf("unexpected interception %+v", a)
	default:
	}
}

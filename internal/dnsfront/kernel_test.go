package dnsfront

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
	"github.com/miekg/dns"
)

// testPrefix names this package's namespaces (netnstest.RemoveStale).
const testPrefix = "egfw-dnsfront-"

// origDecider answers every question with A 192.0.2.1 and reports each
// query's slot and original destination (from conntrack) on seen.
type origDecider struct{ seen chan string }

func (d origDecider) Decide(_ context.Context, q *Query) Decision {
	d.seen <- q.OrigDst().String()
	rr := &dns.A{Hdr: dns.RR_Header{Name: dns.Fqdn(q.Name), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A: net.IPv4(192, 0, 2, 1)}
	return Decision{Verdict: Answer, Records: []dns.RR{rr}, Reason: "allowed"}
}

// TestKernelRedirect: the listeners' own sockets behind the kernel's nat
// redirect, as the rules set it up. A "forwarded" client in a namespace
// behind a veth asks resolvers that do not exist (over UDP and TCP, IPv4
// and IPv6); prerouting redirects its queries to a wildcard listener on
// the interface's primary address, which replies from that address
// (IP_PKTINFO), not from the one routing would pick, so the NAT maps the
// reply back and the client's connected socket accepts it; and a local client's
// queries, redirected in output to a loopback listener. Each query's
// original destination comes from conntrack.
func TestKernelRedirect(t *testing.T) {
	netnstest.NeedRoot(t)
	srv := netnstest.New(t, netnstest.UniqueName(testPrefix))
	cli := netnstest.New(t, netnstest.UniqueName(testPrefix))
	// The redirect goes to veth0's primary address, 10.99.9.1, while a
	// route's choice of source for the reply would be 10.99.0.1: only a
	// reply sent from the address the query reached (IP_PKTINFO) is mapped
	// back by the NAT.
	netnstest.Veth(t, netnstest.End{NS: srv.Name, Dev: "veth0", Addrs: []string{"10.99.9.1/24", "10.99.0.1/24", "fd98::1/64", "fd99::1/64"}},
		netnstest.End{NS: cli.Name, Dev: "eth0", Addrs: []string{"10.99.0.2/24", "fd99::2/64"}})
	srv.IP(t, "link", "set", "lo", "up")
	cli.IP(t, "route", "add", "default", "via", "10.99.0.1")
	cli.IP(t, "-6", "route", "add", "default", "via", "fd99::1")
	srv.RunInput(t, `table inet dnsfront_test {
	chain pre { type nat hook prerouting priority dstnat; iifname "veth0" meta l4proto { udp, tcp } th dport 53 redirect to :5353; }
	chain out { type nat hook output priority -110; meta l4proto { udp, tcp } th dport 53 redirect to :5354; }
}
`, "nft", "-f", "-")

	seen := make(chan string, 16)
	var s *Server
	srv.Do(t, func() {
		var err error
		if s, err = NewServer(Config{Decider: origDecider{seen}}); err != nil {
			t.Fatal(err)
		}
		for _, ap := range []string{"0.0.0.0:5353", "[::]:5353", "127.0.0.1:5354", "[::1]:5354"} {
			if _, err := s.Listen(context.Background(), 1, netip.MustParseAddrPort(ap)); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Cleanup(func() { s.Close() })

	cases := []struct {
		name   string
		ns     *netnstest.NS
		server string
	}{
		{"forwarded, IPv4", cli, "192.0.2.53:53"},
		{"forwarded, IPv6", cli, "[2001:db8::53]:53"},
		{"forwarded, to the gateway", cli, "10.99.0.1:53"},
		{"local, IPv4", srv, "198.51.100.53:53"},
		{"local, IPv6", srv, "[::1]:53"},
	}
	for _, tc := range cases {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+" "+network, func(t *testing.T) {
				if tc.ns == srv && tc.server == "198.51.100.53:53" {
					srv.IP(t, "route", "replace", "198.51.100.0/24", "dev", "veth0")
				}
				var conn net.Conn
				tc.ns.Do(t, func() {
					var err error
					if conn, err = net.DialTimeout(network, tc.server, 2*time.Second); err != nil {
						t.Fatal(err)
					}
				})
				defer conn.Close()
				c := &dns.Conn{Conn: conn}
				m := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
				_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
				if err := c.WriteMsg(m); err != nil {
					t.Fatal(err)
				}
				r, err := c.ReadMsg()
				if err != nil {
					t.Fatalf("no reply from %s over %s (a reply from another address is not accepted): %v", tc.server, network, err)
				}
				if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
					t.Errorf("answer %v", r.Answer)
				}
				select {
				case orig := <-seen:
					if orig != tc.server {
						t.Errorf("original destination %q, want %q", orig, tc.server)
					}
				case <-time.After(time.Second):
					t.Error("the decider was not asked")
				}
			})
		}
	}
}

package nft

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// TestLabelledRedirect: a labelled container's intercepted TCP is
// redirected only to a transparent socket (egressfw's listener) on its
// tenant's port: a plain socket of a local user there (egressfw down) gets
// nothing and the container's SYN is reset, in IPv4 and IPv6.
func TestLabelledRedirect(t *testing.T) {
	tp := newCtrTopo(t, true)
	a := tp.container(t, "pa", 10)
	if err := tp.m.SetContainers([]nftspec.Container{a.identity(2)}); err != nil {
		t.Fatal(err)
	}
	squatter := acceptCount(listenTCP(t, tp.host, ":15002", false))
	for _, raddr := range []string{"198.51.100.10:80", "[2001:db8:1::10]:443"} {
		start := time.Now()
		if got := dialFrom(t, a.ns, "tcp", "", raddr); got != "refused" {
			t.Errorf("labelled container to %s with a plain socket on its port = %s, want refused", raddr, got)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refused after %v, want a reset at once", d)
		}
	}
	nothingOn(t, "the plain socket on the labelled tenant's port", squatter)
}

// TestLabelledDNS: with both tenants' DNS intercepted, a labelled
// container's DNS, UDP and TCP, IPv4 and IPv6, is answered by its tenant's
// DNS listener and an unlabelled one's on the same bridge by the interface
// tenant's; the server they asked sees nothing.
func TestLabelledDNS(t *testing.T) {
	tp := newCtrTopo(t, true)
	tp.spec.Tenants[0].DNS, tp.spec.Tenants[0].DNSPort = nftspec.DNSIntercept, 25001
	tp.spec.Tenants[1].DNS, tp.spec.Tenants[1].DNSPort = nftspec.DNSIntercept, 25002
	if err := tp.m.Apply(tp.spec, nil); err != nil {
		t.Fatal(err)
	}
	a, b := tp.container(t, "pa", 10), tp.container(t, "pb", 20)
	if err := tp.m.SetContainers([]nftspec.Container{a.identity(2), b.identity(0)}); err != nil {
		t.Fatal(err)
	}
	asked := map[string]<-chan asked{}
	for port, answer := range map[string]string{"25001": "192.0.2.1", "25002": "192.0.2.2"} {
		for _, addr := range []string{"0.0.0.0:", "[::]:"} {
			asked[addr+port] = dnsServe(t, tp.host, addr+port, answer, true)
		}
	}
	public := dnsServe(t, tp.out, "198.51.100.10:53", "203.0.113.1", false)
	for _, tc := range []struct {
		who                   *ctr
		network, server, want string
		lis                   string
	}{
		{a, "udp", "198.51.100.10:53", "OK 192.0.2.2", "0.0.0.0:25002"},
		{a, "tcp", "198.51.100.10:53", "OK 192.0.2.2", "0.0.0.0:25002"},
		{a, "udp", "[2001:db8:1::10]:53", "OK 192.0.2.2", "[::]:25002"},
		{b, "udp", "198.51.100.10:53", "OK 192.0.2.1", "0.0.0.0:25001"},
		{b, "tcp", "[2001:db8:1::10]:53", "OK 192.0.2.1", "[::]:25001"},
	} {
		if got := dnsClient(t, tc.who.ns, client{}, tc.network, tc.server); got != tc.want {
			t.Errorf("%s %s to %s: %s, want %s", tc.who.port, tc.network, tc.server, got, tc.want)
		}
		select {
		case <-asked[tc.lis]:
		case <-time.After(2 * time.Second):
			t.Errorf("%s %s to %s: the listener on %s was asked nothing", tc.who.port, tc.network, tc.server, tc.lis)
		}
	}
	nothingOn(t, "the server the containers asked", public)
}

// TestLabelledDNSDirect: a labelled tenant with its DNS not intercepted
// (dns = "direct") keeps port 53 allow_direct's, on a bridge whose
// interface tenant's DNS is intercepted: its query to the resolver
// allow_direct names reaches that resolver, UDP and TCP, and one to
// another address is rejected; neither is the interface tenant's, whose
// DNS listener is asked nothing. An unlabelled neighbour still gets the
// interface tenant's listener.
func TestLabelledDNSDirect(t *testing.T) {
	tp := newCtrTopo(t, true)
	tp.spec.Tenants[0].DNS, tp.spec.Tenants[0].DNSPort = nftspec.DNSIntercept, 25001
	tp.spec.Tenants[1].AllowDirect = append(tp.spec.Tenants[1].AllowDirect, nftspec.Direct{Prefix: netip.MustParsePrefix("10.20.0.20/32"), Ports: []uint16{53}})
	if err := tp.m.Apply(tp.spec, nil); err != nil {
		t.Fatal(err)
	}
	a, b := tp.container(t, "pa", 10), tp.container(t, "pb", 20)
	if err := tp.m.SetContainers([]nftspec.Container{a.identity(2), b.identity(0)}); err != nil {
		t.Fatal(err)
	}
	iface := dnsServe(t, tp.host, "0.0.0.0:25001", "192.0.2.1", true)
	resolver := dnsServe(t, tp.out, "10.20.0.20:53", "203.0.113.20", false)
	other := dnsServe(t, tp.out, "198.51.100.10:53", "203.0.113.10", false)
	for _, tc := range []struct {
		who                   *ctr
		network, server, want string
		asked                 <-chan asked
	}{
		{a, "udp", "10.20.0.20:53", "OK 203.0.113.20", resolver},
		{a, "tcp", "10.20.0.20:53", "OK 203.0.113.20", resolver},
		{a, "udp", "198.51.100.10:53", "ERR", nil},
		{a, "tcp", "198.51.100.10:53", "ERR", nil},
		{b, "udp", "10.20.0.20:53", "OK 192.0.2.1", iface},
	} {
		got := dnsClient(t, tc.who.ns, client{}, tc.network, tc.server)
		if got != tc.want && !(tc.want == "ERR" && strings.HasPrefix(got, "ERR")) {
			t.Errorf("%s %s to %s: %s, want %s", tc.who.port, tc.network, tc.server, got, tc.want)
		}
		if tc.asked != nil {
			select {
			case <-tc.asked:
			case <-time.After(2 * time.Second):
				t.Errorf("%s %s to %s: the server was asked nothing", tc.who.port, tc.network, tc.server)
			}
		}
		if tc.who == a {
			nothingOn(t, "the interface tenant's DNS listener, asked by the labelled container", iface)
		}
	}
	nothingOn(t, "the resolver allow_direct does not name", other)
}

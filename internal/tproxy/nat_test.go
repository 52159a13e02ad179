package tproxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// setupRedirect NATs local TCP to documentation addresses on 80/443 to the
// plain listeners on port 16001 (16002 for 192.0.2.128/25 port 80), as a REDIRECT of
// forwarded traffic would. The conntrack entry is the same either way.
func setupRedirect(t *testing.T, ns *netnstest.NS) {
	addDummy(t, ns)
	nft(t, ns, `
table inet egfwtest {
	chain out {
		type nat hook output priority -100; policy accept;
		ip daddr 192.0.2.128/25 tcp dport 80 redirect to :16002
		ip daddr 192.0.2.0/24 tcp dport { 80, 443 } redirect to :16001
		ip6 daddr 2001:db8::/32 tcp dport { 80, 443 } redirect to :16001
	}
}`)
}

func TestOriginalDstNAT(t *testing.T) {
	if !inNetns(t, setupRedirect) {
		return
	}
	ln4 := listenLoopback(t, "127.0.0.1:16001")
	ln6 := listenLoopback(t, "[::1]:16001")
	dual := listenLoopback(t, "[::]:16002") // dual-stack: IPv4 peers appear v4-mapped
	tests := []struct {
		name    string
		ln      *net.TCPListener
		dial    string
		want    string
		wantErr bool
	}{
		{"ipv4 redirect", ln4, "192.0.2.77:80", "192.0.2.77:80", false},
		{"ipv6 redirect", ln6, "[2001:db8::77]:443", "[2001:db8::77]:443", false},
		{"ipv4 redirect to dual-stack socket", dual, "192.0.2.200:80", "192.0.2.200:80", false},
		// Conntrack tracks every flow once NAT is in use; an untranslated
		// flow reports its real destination.
		{"not NATed", ln4, "127.0.0.1:16001", "127.0.0.1:16001", false},
		{"not NATed on dual-stack socket", dual, "127.0.0.1:16002", "127.0.0.1:16002", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, err := net.DialTimeout("tcp", tc.dial, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			srv := accept(t, tc.ln)
			defer srv.Close()
			got, err := OriginalDstNAT(srv)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("OriginalDstNAT = %v, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := netip.MustParseAddrPort(tc.want); got != want {
				t.Errorf("OriginalDstNAT = %v, want %v", got, want)
			}
		})
	}
}

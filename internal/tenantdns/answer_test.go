package tenantdns

import (
	"net/netip"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsfront"
)

// TestTenantDNSStrip: what is stripped from a tenant's HTTPS and SVCB
// answers follows its config: ech unless strip_ech = false; QUIC-only ALPN
// values unless allow_direct lets it send UDP to port 443 of every address
// of a family (else a client would try QUIC first and wait for it to
// fail); address hints always; nothing answered for dns = "direct".
func TestTenantDNSStrip(t *testing.T) {
	all4, all6 := netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")
	some := netip.MustParsePrefix("198.51.100.0/24")
	for _, c := range []struct {
		name   string
		tenant config.Tenant
		want   *dnsfront.Strip
	}{
		{"defaults", config.Tenant{DNS: config.DNSEgressfw, StripECH: true}, &dnsfront.Strip{ECH: true, QUIC: true, Hints: true}},
		{"strip_ech false", config.Tenant{DNS: config.DNSEgressfw}, &dnsfront.Strip{QUIC: true, Hints: true}},
		{"UDP 443 everywhere", config.Tenant{DNS: config.DNSEgressfw, StripECH: true,
			AllowDirect: []config.AllowDirect{{CIDR: all4, Ports: []uint16{443}, Protocol: "udp"}}}, &dnsfront.Strip{ECH: true, Hints: true}},
		{"every port of every IPv6 address", config.Tenant{DNS: config.DNSEgressfw, StripECH: true,
			AllowDirect: []config.AllowDirect{{CIDR: all6}}}, &dnsfront.Strip{ECH: true, Hints: true}},
		{"TCP 443 only", config.Tenant{DNS: config.DNSEgressfw, StripECH: true,
			AllowDirect: []config.AllowDirect{{CIDR: all4, Ports: []uint16{443}, Protocol: "tcp"}}}, &dnsfront.Strip{ECH: true, QUIC: true, Hints: true}},
		{"UDP 443 to some addresses", config.Tenant{DNS: config.DNSEgressfw, StripECH: true,
			AllowDirect: []config.AllowDirect{{CIDR: some, Ports: []uint16{443}, Protocol: "udp"}}}, &dnsfront.Strip{ECH: true, QUIC: true, Hints: true}},
		{"UDP 53 everywhere", config.Tenant{DNS: config.DNSEgressfw, StripECH: true,
			AllowDirect: []config.AllowDirect{{CIDR: all4, Ports: []uint16{53}, Protocol: "udp"}}}, &dnsfront.Strip{ECH: true, QUIC: true, Hints: true}},
		{"direct", config.Tenant{DNS: config.DNSDirect, StripECH: true}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			td := New(c.tenant)
			switch {
			case c.want == nil && td != nil:
				t.Errorf("got %+v, want nil (the tenant resolves names itself)", td)
			case c.want != nil && (td == nil || td.strip != *c.want):
				t.Errorf("got %+v, want strip %+v", td, *c.want)
			}
		})
	}
}

package nft

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// dnsOn intercepts the first sample tenant's DNS on port.
func dnsOn(port uint16) func(*nftspec.Spec) {
	return func(s *nftspec.Spec) { s.Tenants[0].DNS, s.Tenants[0].DNSPort = nftspec.DNSIntercept, port }
}

func TestValidate(t *testing.T) {
	tenant := func(f func(*nftspec.Tenant)) func(*nftspec.Spec) {
		return func(s *nftspec.Spec) { f(&s.Tenants[0]) }
	}
	tests := []struct {
		name    string
		mod     func(*nftspec.Spec)
		wantErr string // "" = valid
	}{
		{"sample is valid", func(*nftspec.Spec) {}, ""},
		{"DNS intercepted on a port of its own", dnsOn(25002), ""},
		{"DNS direct needs no port", tenant(func(t *nftspec.Tenant) { t.DNS = nftspec.DNSDirect }), ""},
		{"DNS intercepted without a port", dnsOn(0), "DNS port 0"},
		{"DNS port 53", dnsOn(53), "DNS port 53"},
		{"DNS port is an intercept port", dnsOn(443), "DNS port 443"},
		{"DNS port is a listener port", dnsOn(15001), `DNS port 15001 is already the listener or DNS port of "batch"`},
		{"two tenants on one DNS port", func(s *nftspec.Spec) {
			dnsOn(25001)(s)
			s.Tenants[1].DNS, s.Tenants[1].DNSPort = nftspec.DNSIntercept, 25001
		}, "DNS port 25001 is already"},
		{"TCP intercept of port 53 with DNS intercepted", func(s *nftspec.Spec) { dnsOn(25002)(s); s.InterceptPorts = []uint16{443, 53} }, "port 53 cannot be a TCP intercept port"},
		{"unknown DNS mode", func(s *nftspec.Spec) { dnsOn(25002)(s); s.Tenants[0].DNS = 7 }, "unknown DNS mode"},
		{"defaults without tenants", func(s *nftspec.Spec) { s.Tenants = nil }, ""},
		{"table name with space", func(s *nftspec.Spec) { s.Table = "egress fw" }, "table name"},
		{"table name starting with digit", func(s *nftspec.Spec) { s.Table = "1fw" }, "table name"},
		{"no intercept ports", func(s *nftspec.Spec) { s.InterceptPorts = nil }, "no intercept ports"},
		{"intercept mark outside mask", func(s *nftspec.Spec) { s.InterceptMark = 0x4000 }, "inside mark mask"},
		{"bypass equals intercept", func(s *nftspec.Spec) { s.BypassMark = s.InterceptMark }, "both"},
		{"ct mask not low bits", func(s *nftspec.Spec) { s.CtMarkMask = 0xff00 }, "contiguous"},
		{"reserved route table", func(s *nftspec.Spec) { s.RouteTable = 254 }, "route table"},
		{"rule priority after main", func(s *nftspec.Spec) { s.RulePriority = 32766 }, "rule priority"},
		{"slot zero", tenant(func(t *nftspec.Tenant) { t.Slot = 0 }), "slot"},
		{"slot beyond ct mask", tenant(func(t *nftspec.Tenant) { t.Slot = 0x1000 }), "slot"},
		{"listener port is intercept port", tenant(func(t *nftspec.Tenant) { t.ListenerPort = 443 }), "listener port"},
		{"duplicate slot", func(s *nftspec.Spec) { s.Tenants[1].Slot = s.Tenants[0].Slot }, "slot 2 already used"},
		{"duplicate listener port", func(s *nftspec.Spec) { s.Tenants[1].ListenerPort = s.Tenants[0].ListenerPort }, "listener port 15002 already"},
		{"same cgroup twice", func(s *nftspec.Spec) { s.Tenants[1].Cgroups = []string{"egressfw.slice/egressfw-webhooks.slice"} }, "already used"},
		{"cgroup not clean", func(s *nftspec.Spec) { s.Tenants[1].Cgroups = []string{"/egressfw.slice/egressfw-webhooks.slice/"} }, "want a clean path"},
		{"guard not clean", func(s *nftspec.Spec) { s.Guards = []string{"egressfw.slice/"} }, "want a clean path"},
		{"same uid twice", func(s *nftspec.Spec) { s.Tenants[1].UIDs = []uint32{4242} }, "uid 4242 already"},
		{"uid inside another tenant's range", func(s *nftspec.Spec) { s.Tenants[1].UIDs = []uint32{120000} }, `uid 120000 already used by "webhooks" (uids 120000 and 99999-165535)`},
		{"ranges overlap", func(s *nftspec.Spec) { s.Tenants[1].UIDRanges = []nftspec.UIDRange{{First: 165000, Last: 170000}} }, `tenant "batch": uid 165000 already used by "webhooks"`},
		{"ranges side by side are valid", func(s *nftspec.Spec) {
			s.Tenants[1].UIDRanges = []nftspec.UIDRange{{First: 165536, Last: 165536}, {First: 165537, Last: 200000}}
		}, ""},
		{"range reversed", tenant(func(t *nftspec.Tenant) { t.UIDRanges = []nftspec.UIDRange{{First: 2000, Last: 1000}} }), "uid range 2000-1000"},
		{"range up to (uid_t)-1", tenant(func(t *nftspec.Tenant) { t.UIDRanges = []nftspec.UIDRange{{First: 1 << 31, Last: 1<<32 - 1}} }), "< 4294967295"},
		{"cgroup root", tenant(func(t *nftspec.Tenant) { t.Cgroups = []string{"/"} }), "below the cgroup2 root"},
		{"cgroup dotdot", tenant(func(t *nftspec.Tenant) { t.Cgroups = []string{"a/../b"} }), "below the cgroup2 root"},
		{"cgroup with quote", tenant(func(t *nftspec.Tenant) { t.Cgroups = []string{`a"b`} }), "quote"},
		{"interface lo", tenant(func(t *nftspec.Tenant) { t.Interfaces = []string{"lo"} }), "interface \"lo\""},
		{"interface with quote", tenant(func(t *nftspec.Tenant) { t.Interfaces = []string{`br"*`} }), "interface"},
		{"interface too long", tenant(func(t *nftspec.Tenant) { t.Interfaces = []string{"abcdefghijklmnop"} }), "interface"},
		{"bare star interface", tenant(func(t *nftspec.Tenant) { t.Interfaces = []string{"*"} }), "interface"},
		{"mapped source", tenant(func(t *nftspec.Tenant) { t.Sources = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")} }), "source prefix"},
		{"forwarded is valid", tenant(func(t *nftspec.Tenant) {
			t.Interfaces, t.Sources = []string{"docker0", "br-*"}, []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}
		}), ""},
		{"labelled tenant is valid", func(s *nftspec.Spec) { s.Containers, s.Tenants[0].Labelled = true, true }, ""},
		{"labelled without container identity", tenant(func(t *nftspec.Tenant) { t.Labelled = true }), "needs container identity"},
		{"labelled slot beyond the container mask", func(s *nftspec.Spec) {
			s.Containers, s.Tenants[0].Labelled, s.Tenants[0].Slot = true, true, 0x100
		}, "does not fit container mark mask"},
		{"container mask over the mark mask", func(s *nftspec.Spec) { s.Containers, s.ContainerMarkMask = true, 0xff00 }, "overlaps mark mask"},
		{"container ct mask over the slot bits", func(s *nftspec.Spec) { s.Containers, s.ContainerCtMask = true, 0xff0 }, "overlaps ct mark mask"},
		{"container masks of two widths", func(s *nftspec.Spec) { s.Containers, s.ContainerCtMask = true, 0xf0000 }, "same width"},
		{"container mask not contiguous", func(s *nftspec.Spec) { s.Containers, s.ContainerMarkMask = true, 0x81 }, "contiguous"},
		{"container masks unused without containers", func(s *nftspec.Spec) { s.ContainerMarkMask = 0 }, ""},
		{"tenant name with quote", tenant(func(t *nftspec.Tenant) { t.Name = `x"y` }), "name"},
		{"mapped prefix", tenant(func(t *nftspec.Tenant) {
			t.AllowDirect = []nftspec.Direct{{Prefix: netip.MustParsePrefix("::ffff:10.0.0.0/104")}}
		}), "IPv4-mapped"},
		{"bad proto", tenant(func(t *nftspec.Tenant) {
			t.AllowDirect = []nftspec.Direct{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Proto: "icmp"}}
		}), "proto"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleSpec()
			tc.mod(&s)
			err := s.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.wantErr)
			}
			if _, rerr := rules.Render(s, nil); rerr == nil {
				t.Fatal("Render accepted an invalid spec")
			}
		})
	}
}

func TestRenderRouting(t *testing.T) {
	s := sampleSpec()
	s.RouteTable, s.RulePriority = 77, 88
	out, err := rules.Render(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# ip rule add fwmark 0x2000/0x3000 lookup 77 pref 88\n",
		"# ip -6 rule add fwmark 0x2000/0x3000 lookup 77 pref 88\n",
		"# ip route add local 0.0.0.0/0 dev lo table 77\n",
		"# ip -6 route add local ::/0 dev lo table 77\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Render lacks %q", want)
		}
	}
}

package nft

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the kernel listing")

// sampleSpec exercises every rule shape: cgroups at two levels, uids and
// uid ranges (of two tenants side by side, and a tenant's own uid next to
// its range), allow_direct variants (IPv4/IPv6, host/prefix/any, tcp/udp/both, one or
// many ports) and a report-mode tenant.
func sampleSpec() nftspec.Spec {
	s := nftspec.DefaultSpec()
	s.Tenants = []nftspec.Tenant{
		{Name: "webhooks", Slot: 2, ListenerPort: 15002,
			Cgroups: []string{"egressfw.slice/egressfw-webhooks.slice", "other.slice"}, UIDs: []uint32{4242, 0, 99999},
			UIDRanges: []nftspec.UIDRange{{First: 100000, Last: 165535}},
			AllowDirect: []nftspec.Direct{
				{Prefix: netip.MustParsePrefix("127.0.0.53/32"), Ports: []uint16{53}},
				{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Ports: []uint16{853, 53, 5353}, Proto: "tcp"},
				{Prefix: netip.MustParsePrefix("2001:db8:1::/48"), Proto: "udp"},
				{Prefix: netip.MustParsePrefix("2001:db8::53/128")},
				{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Ports: []uint16{123}, Proto: "udp"},
			}},
		{Name: "batch", Slot: 1, ListenerPort: 15001, Report: true, Cgroups: []string{"batch.slice"},
			UIDs: []uint32{4243}, UIDRanges: []nftspec.UIDRange{{First: 165536, Last: 231071}}},
	}
	return s
}

// forwardedSpec adds forwarded tenants to sampleSpec: containers by
// interface with source ranges, VMs by interface only, pods by source range.
func forwardedSpec() nftspec.Spec {
	s := sampleSpec()
	s.Tenants[0].Interfaces = []string{"docker0", "br-*"}
	s.Tenants[0].Sources = []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("fd00:17::/64")}
	s.Tenants = append(s.Tenants,
		nftspec.Tenant{Name: "vms", Slot: 3, ListenerPort: 15003, Interfaces: []string{"virbr0"},
			AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("192.168.122.1/32"), Ports: []uint16{53}}}},
		nftspec.Tenant{Name: "pods", Slot: 4, ListenerPort: 15004, Report: true, Sources: []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16")}})
	return s
}

// dnsSpec intercepts the DNS of forwardedSpec's tenants but the pods'
// (dns = "direct": their allow_direct governs port 53): local, forwarded
// and both at once, in enforce and report mode.
func dnsSpec() nftspec.Spec {
	s := forwardedSpec()
	for i := range s.Tenants {
		if s.Tenants[i].Name != "pods" {
			s.Tenants[i].DNS, s.Tenants[i].DNSPort = nftspec.DNSIntercept, 25000+uint16(s.Tenants[i].Slot)
		}
	}
	return s
}

// containersSpec adds container identity to dnsSpec: a labelled tenant of
// its own and the VMs' tenant labelled as well, both with their DNS
// intercepted.
func containersSpec() nftspec.Spec {
	s := dnsSpec()
	s.Containers = true
	s.Tenants[2].Labelled = true
	s.Tenants = append(s.Tenants, nftspec.Tenant{Name: "trusted", Slot: 5, ListenerPort: 15005, Labelled: true,
		DNS: nftspec.DNSIntercept, DNSPort: 25005,
		AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("10.20.0.20/32"), Ports: []uint16{8080}, Proto: "tcp"}}})
	return s
}

// sampleIDs are far above any real cgroup inode, so nft prints them as
// numbers rather than resolving a path.
var sampleIDs = nftspec.CgroupIDs{
	"egressfw.slice/egressfw-webhooks.slice": 1<<40 + 7,
	"batch.slice":                            1<<40 + 3,
}

var spaces = regexp.MustCompile(`\s+`)

// tproxyPortMap is the port part of the tproxy statements. nft 1.0.6 loads
// it correctly (`nft -f` of Render's output produces the same netlink
// program) but its printer drops a port that comes from a map, so it is cut
// from Render's text before comparing; TestTProxyPortFromMap checks the
// kernel program instead.
var tproxyPortMap = regexp.MustCompile(`(tproxy ip6? to (127\.0\.0\.1|\[::1\])):ct mark & 0x[0-9a-f]{8} map @tproxy_ports`)

// containerPortMap is the same for the labelled tenants' redirect check
// (TestLabelledRedirect checks that it works).
var containerPortMap = regexp.MustCompile(`(tproxy to ):ct mark & 0x[0-9a-f]{8} map @container_(ports|dns) `)

func normalize(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.TrimSpace(spaces.ReplaceAllString(strings.Join(keep, "\n"), " "))
}

func TestRenderMatchesKernel(t *testing.T) {
	tests := []struct {
		name string
		spec nftspec.Spec
		ids  nftspec.CgroupIDs
	}{
		{"no tenants", nftspec.DefaultSpec(), nil},
		{"sample", sampleSpec(), sampleIDs},
		{"forwarded", forwardedSpec(), sampleIDs},
		{"dns", dnsSpec(), sampleIDs},
		{"containers", containersSpec(), sampleIDs},
		{"custom marks", func() nftspec.Spec {
			s := sampleSpec()
			s.Table, s.MarkMask, s.InterceptMark, s.BypassMark, s.CtMarkMask = "fw2", 0x30000, 0x10000, 0x20000, 0xff
			s.InterceptPorts = []uint16{8080}
			return s
		}(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t, false)
			m := ns.manager(t)
			if err := m.Apply(tc.spec, tc.ids); err != nil {
				t.Fatal(err)
			}
			got := ns.nft(t, "list", "table", "inet", tc.spec.Table)
			if tc.spec.Containers {
				got += ns.nft(t, "list", "table", "bridge", tc.spec.Table)
			}
			golden := filepath.Join("testdata", strings.ReplaceAll(tc.name, " ", "_")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("kernel listing differs from %s:\n%s", golden, got)
			}
			r, err := rules.Render(tc.spec, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !tproxyPortMap.MatchString(r) {
				t.Fatalf("Render has no tproxy port map:\n%s", r)
			}
			r = containerPortMap.ReplaceAllString(tproxyPortMap.ReplaceAllString(r, "$1"), "$1")
			if normalize(r) != normalize(got) {
				t.Errorf("Render differs from the kernel listing.\nrender:\n%s\nkernel:\n%s", r, got)
			}
		})
	}
}

package policy

import (
	"net/netip"
	"testing"
)

// BenchmarkDecideAllow is the hot path: a name allowed by a suffix pattern,
// three public answers (two families), public_cidrs overrides and a few host
// addresses to check against.
func BenchmarkDecideAllow(b *testing.B) {
	p := testPolicy(b)
	p.Classifier().SetHostAddrs(addrs("10.40.0.1", "10.40.0.9", "127.0.0.1", "::1", "fe80::1", "192.168.1.20"))
	ct := testTenants(b)["web"]
	req := Request{
		Name:     "cdn.assets.example.org",
		OrigDst:  ap("192.0.2.11:443"),
		Resolved: addrs("192.0.2.10", "192.0.2.11", "2001:db8::10"),
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(bg, ct, req); !d.Allow {
			b.Fatal(d.Detail)
		}
	}
}

// BenchmarkDecideAllowNoOverrides is the same request against real public
// addresses with no overrides, so only the registry is scanned.
func BenchmarkDecideAllowNoOverrides(b *testing.B) {
	c := mustClassifier(b, nil, nil)
	c.SetHostAddrs(addrs("10.40.0.1", "127.0.0.1", "::1"))
	p := New(c, nil)
	ct := testTenants(b)["web"]
	req := Request{
		Name:     "cdn.assets.example.org",
		OrigDst:  ap("93.184.216.35:443"),
		Resolved: addrs("93.184.216.34", "93.184.216.35", "2606:2800:220:1:248:1893:25c8:1946", "2606:2800:220:1:248:1893:25c8:1947"),
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(bg, ct, req); !d.Allow {
			b.Fatal(d.Detail)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	c := mustClassifier(b, []string{"8.8.0.0/16"}, []string{"198.51.100.0/24", "2001:db8::/32"})
	c.SetHostAddrs(addrs("10.40.0.1", "127.0.0.1", "::1"))
	for _, a := range []string{"93.184.216.34", "10.20.0.10", "2606:4700::1111", "fd00::1", "::ffff:93.184.216.34", "2002:808:808::1"} {
		addr := netip.MustParseAddr(a)
		b.Run(a, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Classify(addr)
			}
		})
	}
}

// BenchmarkDecideDenyInternal shows the cost of a denial, which formats its
// detail string.
func BenchmarkDecideDenyInternal(b *testing.B) {
	p := testPolicy(b)
	ct := testTenants(b)["web"]
	req := Request{Name: "example.com", OrigDst: ap("10.20.0.10:443"), Resolved: addrs("10.20.0.10")}
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(bg, ct, req); d.Allow {
			b.Fatal("allowed")
		}
	}
}

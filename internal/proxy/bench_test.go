package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnstest"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/sni"
	"github.com/egressfw/egressfw/internal/status"
)

// benchDecider is the policy and the harness's tenant web, whose resolver
// has every name of the benchmark cached (min_ttl 1h): what is measured is
// the verdict (protocol checks, name rules, cache hit, address checks),
// not DNS.
func benchDecider(b *testing.B) (*policy.Policy, *policy.CompiledTenant) {
	dns := dnstest.New(b)
	dns.Set("www.example.com", "198.51.100.10", "2001:db8::10")
	dns.Set("bi-tool.example.com", "10.20.0.10")
	cfg, err := config.Parse([]byte(fmt.Sprintf(harnessConfig, dns.Addr)), "bench")
	if err != nil {
		b.Fatal(err)
	}
	cfg.DNS.MinTTL, cfg.DNS.MaxTTL = config.D(time.Hour), config.D(time.Hour)
	pol, tenants, _, err := newPolicy(cfg, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	return pol, tenants["web"]
}

// BenchmarkDecide is the verdict on one peeked request, DNS answers cached:
// an allowed public name, a name resolving to an internal address, and a
// name on the deny list (never looked up).
func BenchmarkDecide(b *testing.B) {
	pol, t := benchDecider(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name, host, orig string
		allow            bool
	}{
		{"allow", "www.example.com", "198.51.100.10:443", true},
		{"internal", "bi-tool.example.com", "10.20.0.10:443", false},
		{"denylist", "x.blocked.example", "198.51.100.10:443", false},
	} {
		r := sni.Result{Kind: sni.KindTLS, Name: bc.host}
		orig := netip.MustParseAddrPort(bc.orig)
		judge(ctx, pol, t, r, orig) // fill the cache
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := judge(ctx, pol, t, r, orig); d.Allow != bc.allow {
					b.Fatalf("allow = %v: %s", d.Allow, d.Detail)
				}
			}
		})
	}
}

// BenchmarkLogLine is the connection record of an allowed connection turned
// into its metrics, its count in the tenant's status and its JSON log line.
func BenchmarkLogLine(b *testing.B) {
	pol, t := benchDecider(b)
	ctx := context.Background()
	r := sni.Result{Kind: sni.KindTLS, Name: "www.example.com", ALPN: []string{"h2", "http/1.1"}}
	orig := netip.MustParseAddrPort("198.51.100.10:443")
	s := New(Options{Log: slog.New(slog.NewJSONHandler(discard{}, nil))})
	v := judge(ctx, pol, t, r, orig)
	tracker := &status.Tracker{}
	b.ReportAllocs()
	for b.Loop() {
		rec := connRecord{start: time.Now(), tenant: "web", mode: "enforce", src: netip.MustParseAddrPort("127.0.0.1:40000"), orig: orig,
			tracker: tracker}
		rec.setRequest(r)
		rec.verdict = v
		rec.dialed, rec.up, rec.down = orig, 517, 4096
		s.finish(&rec)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

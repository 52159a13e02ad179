package resolver

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkLookupCacheHit measures a Lookup answered from the cache: the
// per-connection cost once a name is warm.
func BenchmarkLookupCacheHit(b *testing.B) {
	srv := startServer(b, "127.0.0.1", zone(b, dns.RcodeSuccess,
		"www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2",
		"www.example.com. 300 IN AAAA 2001:db8::1"))
	r, _ := newTestResolver(b, []string{srv.addr}, nil)
	ctx := context.Background()
	if _, err := r.Lookup(ctx, "www.example.com"); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if res, err := r.Lookup(ctx, "www.example.com"); err != nil || !res.Cached {
				b.Fatalf("not a cache hit: %v", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res, err := r.Lookup(ctx, "www.example.com"); err != nil || !res.Cached {
					b.Errorf("not a cache hit: %v", err)
					return
				}
			}
		})
	})
	if got := srv.queries(dns.TypeA); got != 1 {
		b.Fatalf("server saw %d A queries, want 1", got)
	}
}

// BenchmarkQueryCacheHit measures what a tenant's cached A question costs
// the resolver: the Lookup cache hit and the records built from it.
func BenchmarkQueryCacheHit(b *testing.B) {
	srv := startServer(b, "127.0.0.1", zone(b, dns.RcodeSuccess,
		"www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2",
		"www.example.com. 300 IN AAAA 2001:db8::1"))
	r, _ := newTestResolver(b, []string{srv.addr}, nil)
	ctx := context.Background()
	if _, err := r.Query(ctx, "www.example.com", dns.TypeA); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ans, err := r.Query(ctx, "www.example.com", dns.TypeA); err != nil || !ans.Cached || len(ans.Records) != 2 {
			b.Fatalf("not a cache hit: %v", err)
		}
	}
}

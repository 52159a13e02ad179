package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/dnstest"
	"github.com/miekg/dns"
)

// rrTexts renders records without their TTL, for comparison.
func rrTexts(rrs []dns.RR) string {
	var out []string
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		out = append(out, strings.ReplaceAll(c.String(), "\t", " "))
	}
	return strings.Join(out, "\n")
}

func newDNSTestResolver(t *testing.T, srv *dnstest.Server, mod func(*Config)) *Resolver {
	t.Helper()
	srv.SetTTL(60)
	r, _ := newTestResolver(t, []string{srv.Addr}, mod)
	return r
}

// TestQueryAddressesAreLookups: a tenant's A, AAAA and CNAME answers are
// built from the Result Lookup returns and caches for the proxy: the same
// addresses, the same chain, and one upstream query per family however
// many questions and lookups follow.
func TestQueryAddressesAreLookups(t *testing.T) {
	srv := dnstest.New(t)
	srv.SetCNAME("www.example.com", "edge.example.net")
	srv.SetCNAME("edge.example.net", "pop.example.org")
	srv.Set("pop.example.org", "192.0.2.1", "192.0.2.2", "2001:db8::1")
	srv.Set("v4only.example.com", "192.0.2.7")
	r := newDNSTestResolver(t, srv, nil)
	ctx := context.Background()

	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  string
	}{
		{"A through the chain", "WWW.example.com", dns.TypeA, "www.example.com. 0 IN CNAME edge.example.net.\n" +
			"edge.example.net. 0 IN CNAME pop.example.org.\npop.example.org. 0 IN A 192.0.2.1\npop.example.org. 0 IN A 192.0.2.2"},
		{"AAAA through the chain", "www.example.com.", dns.TypeAAAA, "www.example.com. 0 IN CNAME edge.example.net.\n" +
			"edge.example.net. 0 IN CNAME pop.example.org.\npop.example.org. 0 IN AAAA 2001:db8::1"},
		{"CNAME: the first link", "www.example.com", dns.TypeCNAME, "www.example.com. 0 IN CNAME edge.example.net."},
		{"CNAME of a name without one: NODATA", "v4only.example.com", dns.TypeCNAME, ""},
		{"AAAA of an IPv4-only name: NODATA", "v4only.example.com", dns.TypeAAAA, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Queries()
			ans, err := r.Query(ctx, tc.qname, tc.qtype)
			if err != nil {
				t.Fatal(err)
			}
			if got := rrTexts(ans.Records); got != tc.want {
				t.Fatalf("records:\n%s\nwant:\n%s", got, tc.want)
			}
			res, err := r.Lookup(ctx, tc.qname)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Cached {
				t.Error("the Lookup after Query was not a cache hit: the proxy and the tenant would see two answers")
			}
			if got := rrTexts(res.Records(tc.qtype)); got != tc.want {
				t.Errorf("Result.Records = %s, want what Query served", got)
			}
			if srv.Queries()-before > 2 {
				t.Errorf("%d upstream queries, want at most one per family", srv.Queries()-before)
			}
		})
	}
	if got := srv.Queries(); got != 4 {
		t.Errorf("upstream saw %d queries for two names, want 4 (A and AAAA each)", got)
	}
}

// TestQueryAddressesBounded: the addresses a tenant is told are the ones
// Lookup kept (Config.MaxAddrs), not the upstream's whole answer.
func TestQueryAddressesBounded(t *testing.T) {
	srv := dnstest.New(t)
	var addrs []string
	for i := range 40 {
		addrs = append(addrs, fmt.Sprintf("198.51.100.%d", i+1))
	}
	srv.Set("many.example", addrs...)
	r := newDNSTestResolver(t, srv, func(c *Config) { c.MaxAddrs = 5 })
	ans, err := r.Query(context.Background(), "many.example", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := r.Lookup(context.Background(), "many.example")
	if len(ans.Records) != 5 || ans.Dropped != 35 {
		t.Fatalf("%d records, %d dropped; want 5 and 35", len(ans.Records), ans.Dropped)
	}
	for i, rr := range ans.Records {
		if a, _ := netip.AddrFromSlice(rr.(*dns.A).A); a != res.Addrs[i] {
			t.Errorf("record %d is %v, the proxy validated %v", i, a, res.Addrs[i])
		}
	}
}

// TestQueryOtherTypes: HTTPS, SVCB and widened types come from the
// upstream, byte for byte, follow the chain within its bound, are cached
// under their own key and answer NODATA and NXDOMAIN as the upstream does.
func TestQueryOtherTypes(t *testing.T) {
	srv := dnstest.New(t)
	https := `svc.example. 60 IN HTTPS 1 . alpn="h3,h2" ipv4hint=192.0.2.10 ech="AEn+DQBFKwAgACABWIHUGj4u+PIggYXcR5JF0gYk3dCRioBW8uJq9H4mKAAIAAEAAQABAANAEnB1YmxpYy50bHMtZWNoLmRldgAA"`
	if err := srv.SetRecords(https,
		"_8443._https.svc.example. 60 IN SVCB 1 svc.example. port=8443",
		"txt.example. 60 IN TXT \"v=spf1 -all\""); err != nil {
		t.Fatal(err)
	}
	srv.SetCNAME("alias.example", "svc.example")
	srv.Set("addr.example", "192.0.2.3")
	for i := range 9 {
		srv.SetCNAME(fmt.Sprintf("c%d.example", i), fmt.Sprintf("c%d.example", i+1))
	}
	if err := srv.SetRecords("c9.example. 60 IN HTTPS 1 ."); err != nil {
		t.Fatal(err)
	}
	want, _ := dns.NewRR(https)
	r := newDNSTestResolver(t, srv, nil)
	ctx := context.Background()

	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		want    string
		wantErr error
	}{
		{"HTTPS as served", "svc.example", dns.TypeHTTPS, rrTexts([]dns.RR{want}), nil},
		{"HTTPS through a CNAME", "alias.example", dns.TypeHTTPS, "alias.example. 0 IN CNAME svc.example.\n" + rrTexts([]dns.RR{want}), nil},
		{"SVCB", "_8443._https.svc.example", dns.TypeSVCB, "_8443._https.svc.example. 0 IN SVCB 1 svc.example. port=\"8443\"", nil},
		{"TXT (a widened type)", "txt.example", dns.TypeTXT, `txt.example. 0 IN TXT "v=spf1 -all"`, nil},
		{"HTTPS of a name with addresses only: NODATA", "addr.example", dns.TypeHTTPS, "", nil},
		{"HTTPS of a name that does not exist", "nope.example", dns.TypeHTTPS, "", ErrNXDomain},
		{"chain past 8 hops", "c0.example", dns.TypeHTTPS, "", ErrServerFailure},
		{"ANY is not served", "svc.example", dns.TypeANY, "", ErrQueryType},
		{"AXFR is not served", "svc.example", dns.TypeAXFR, "", ErrQueryType},
		{"OPT is not served", "svc.example", dns.TypeOPT, "", ErrQueryType},
		{"invalid name", "bad name.example", dns.TypeHTTPS, "", ErrInvalidName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, wantCached := range []bool{false, true} {
				before := srv.Queries()
				ans, err := r.Query(ctx, tc.qname, tc.qtype)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if err != nil {
					return
				}
				if got := rrTexts(ans.Records); got != tc.want {
					t.Fatalf("records:\n%s\nwant:\n%s", got, tc.want)
				}
				if ans.Cached != wantCached && tc.want != "" {
					t.Errorf("cached = %v, want %v", ans.Cached, wantCached)
				}
				if wantCached && srv.Queries() != before {
					t.Errorf("a cached answer went upstream")
				}
			}
		})
	}
	t.Run("records are the caller's copies", func(t *testing.T) {
		a1, _ := r.Query(ctx, "svc.example", dns.TypeHTTPS)
		a1.Records[0].(*dns.HTTPS).Value = nil
		a2, _ := r.Query(ctx, "svc.example", dns.TypeHTTPS)
		if rrTexts(a2.Records) != rrTexts([]dns.RR{want}) {
			t.Fatalf("a caller's edit reached the cache: %s", rrTexts(a2.Records))
		}
	})
}

// TestQueryRecordsBounded: a widened type keeps at most MaxAddrs records,
// and big records count against the cache's byte bound.
func TestQueryRecordsBounded(t *testing.T) {
	srv := dnstest.New(t)
	big := strings.Repeat("x", 250)
	for i := range 40 {
		if err := srv.SetRecords(fmt.Sprintf("txt.example. 60 IN TXT \"%d %s\"", i, big)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if err := srv.SetRecords(fmt.Sprintf("t%d.example. 60 IN TXT \"%s\" \"%s\" \"%s\"", i, big, big, big)); err != nil {
			t.Fatal(err)
		}
	}
	r := newDNSTestResolver(t, srv, func(c *Config) { c.MaxAddrs = 8; c.CacheBytes = 8 << 10 })
	ans, err := r.Query(context.Background(), "txt.example", dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Records) != 8 || ans.Dropped != 32 {
		t.Fatalf("%d records, %d dropped; want 8 and 32", len(ans.Records), ans.Dropped)
	}
	for i := range 20 {
		if _, err := r.Query(context.Background(), fmt.Sprintf("t%d.example", i), dns.TypeTXT); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.cache.size(); got > 8<<10 {
		t.Fatalf("cache holds %d bytes, bound is %d", got, 8<<10)
	}
}

// TestQueryFailedFamily: when one family failed upstream, a question of
// that family is a server failure, not NODATA; the other family answers.
func TestQueryFailedFamily(t *testing.T) {
	srv := startServer(t, "127.0.0.1", byType(zone(t, dns.RcodeSuccess, "half.example. 60 IN A 192.0.2.5"),
		zone(t, dns.RcodeServerFailure)))
	r, _ := newTestResolver(t, []string{srv.addr}, nil)
	if _, err := r.Query(context.Background(), "half.example", dns.TypeAAAA); !errors.Is(err, ErrServerFailure) {
		t.Fatalf("AAAA: err = %v, want a server failure", err)
	}
	ans, err := r.Query(context.Background(), "half.example", dns.TypeA)
	if err != nil || rrTexts(ans.Records) != "half.example. 0 IN A 192.0.2.5" {
		t.Fatalf("A: %v %s", err, rrTexts(ans.Records))
	}
}

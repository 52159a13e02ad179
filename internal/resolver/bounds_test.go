package resolver

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// many answers every A and AAAA question with n4 and n6 records, truncated
// over UDP as a real server does, so the full answer comes over TCP.
func many(n4, n6 int) replyFunc {
	return func(req *dns.Msg, tcp bool) *dns.Msg {
		m := new(dns.Msg).SetReply(req)
		q := req.Question[0]
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
		switch q.Qtype {
		case dns.TypeA:
			for i := range n4 {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: []byte{198, 18, byte(i >> 8), byte(i)}})
			}
		case dns.TypeAAAA:
			for i := range n6 {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}).AsSlice()})
			}
		}
		if !tcp {
			m.Truncate(ednsSize)
		}
		return m
	}
}

// TestLookupCapsAddresses: a name keeps at most MaxAddrs addresses (each
// family up to half, the other's unused share on top), the rest is
// counted in Dropped, and the cached answer is the capped one.
func TestLookupCapsAddresses(t *testing.T) {
	tests := []struct {
		name           string
		n4, n6, limit  int
		want4, want6   int
		wantDropped    int
		wantTruncation bool
	}{
		{name: "200 A and 50 AAAA, default bound", n4: 200, n6: 50, limit: DefaultMaxAddrs, want4: 16, want6: 16, wantDropped: 218, wantTruncation: true},
		{name: "200 A only", n4: 200, limit: DefaultMaxAddrs, want4: 32, wantDropped: 168, wantTruncation: true},
		{name: "10 A, 100 AAAA: IPv6 takes the unused share", n4: 10, n6: 100, limit: DefaultMaxAddrs, want4: 10, want6: 22, wantDropped: 78, wantTruncation: true},
		{name: "exactly the bound", n4: 32, limit: DefaultMaxAddrs, want4: 32},
		{name: "bound of 4", n4: 3, n6: 3, limit: 4, want4: 2, want6: 2, wantDropped: 2},
		{name: "odd bound", n4: 5, n6: 5, limit: 5, want4: 3, want6: 2, wantDropped: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, "127.0.0.1", many(tc.n4, tc.n6))
			r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.MaxAddrs = tc.limit })
			for _, wantCached := range []bool{false, true} {
				res, err := r.Lookup(context.Background(), "many.example")
				if err != nil {
					t.Fatal(err)
				}
				got4, got6 := 0, 0
				for i, a := range res.Addrs {
					if a.Is4() {
						if got6 > 0 {
							t.Fatalf("IPv4 after IPv6 at %d: %s", i, addrStrings(res))
						}
						if want := netip.AddrFrom4([4]byte{198, 18, byte(got4 >> 8), byte(got4)}); a != want {
							t.Fatalf("address %d = %s, want %s (the server's order)", i, a, want)
						}
						got4++
					} else {
						got6++
					}
				}
				if got4 != tc.want4 || got6 != tc.want6 || res.Dropped != tc.wantDropped || res.Cached != wantCached {
					t.Fatalf("cached=%v: %d IPv4 + %d IPv6, %d dropped; want %d + %d, %d dropped (cached=%v)",
						res.Cached, got4, got6, res.Dropped, tc.want4, tc.want6, tc.wantDropped, wantCached)
				}
			}
			if (srv.tcpQueries() > 0) != tc.wantTruncation {
				t.Errorf("%d TCP queries; want them only for answers too big for UDP", srv.tcpQueries())
			}
		})
	}
}

// TestCacheBoundedByBytes: however many names the cache may hold, it
// keeps only as many as fit its byte bound, least recently used out first.
func TestCacheBoundedByBytes(t *testing.T) {
	srv := startServer(t, "127.0.0.1", many(16, 16))
	const maxBytes = 16 << 10
	r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.CacheSize, c.CacheBytes = 10000, maxBytes })
	for i := range 200 {
		name := fmt.Sprintf("n%d.%s.example", i, strings.Repeat("x", 60))
		if _, err := r.Lookup(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		if b := r.cache.size(); b > maxBytes {
			t.Fatalf("after %d names the cache holds ~%d bytes, bound %d", i+1, b, maxBytes)
		}
	}
	n := r.cache.len()
	if n == 0 || n >= 200 {
		t.Fatalf("cache holds %d of 200 names; want some, bounded by bytes", n)
	}
	// The most recent names are the ones kept.
	res, err := r.Lookup(context.Background(), fmt.Sprintf("n199.%s.example", strings.Repeat("x", 60)))
	if err != nil || !res.Cached {
		t.Fatalf("the last name looked up is not cached: cached=%v err=%v", res.Cached, err)
	}
	res, err = r.Lookup(context.Background(), fmt.Sprintf("n0.%s.example", strings.Repeat("x", 60)))
	if err != nil || res.Cached {
		t.Fatalf("the first name looked up is still cached: cached=%v err=%v", res.Cached, err)
	}
	t.Logf("%d names of 32 addresses fit %d bytes", n, maxBytes)
}

// TestCacheAccountsBytes: replacing and expiring entries gives their bytes
// back, so the bound does not drift.
func TestCacheAccountsBytes(t *testing.T) {
	c := newCache(10, 1<<20)
	a := &answer{addrs: make([]netip.Addr, 8), aliases: []string{"a.example"}, expires: clockBase.Add(1)}
	c.put("x.example", a)
	c.put("x.example", a)
	if c.len() != 1 || c.size() != a.size("x.example") {
		t.Fatalf("after putting one name twice: %d entries, %d bytes, want 1 and %d", c.len(), c.size(), a.size("x.example"))
	}
	if _, ok := c.get("x.example", clockBase.Add(2)); ok || c.size() != 0 || c.len() != 0 {
		t.Fatalf("after expiry: %d entries, %d bytes, want none", c.len(), c.size())
	}
}

// TestLookupReturnsAliases: the resolver returns the CNAME chain it
// followed (both families', each name once), from the cache too, so the
// policy can judge every name in it.
func TestLookupReturnsAliases(t *testing.T) {
	reply := zone(t, dns.RcodeSuccess,
		"www.example.com. 60 IN CNAME Cdn.Example.ORG.",
		"cdn.example.org. 60 IN CNAME edge.example.net.",
		"edge.example.net. 60 IN A 192.0.2.10",
		"edge.example.net. 60 IN AAAA 2001:db8::10")
	srv := startServer(t, "127.0.0.1", reply)
	r, _ := newTestResolver(t, []string{srv.addr}, nil)
	for _, wantCached := range []bool{false, true} {
		res, err := r.Lookup(context.Background(), "www.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"cdn.example.org", "edge.example.net"}; !reflect.DeepEqual(res.Aliases, want) || res.Cached != wantCached {
			t.Fatalf("aliases %q cached=%v, want %q cached=%v", res.Aliases, res.Cached, want, wantCached)
		}
		res.Aliases[0] = "changed" // the caller's copy
	}
	plain := startServer(t, "127.0.0.1", zone(t, dns.RcodeSuccess, "plain.example. 60 IN A 192.0.2.1"))
	r, _ = newTestResolver(t, []string{plain.addr}, nil)
	if res, err := r.Lookup(context.Background(), "plain.example"); err != nil || res.Aliases != nil {
		t.Fatalf("a name without CNAME: aliases %q err %v", res.Aliases, err)
	}
}

func TestConfigRejectsBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no addresses", func(c *Config) { c.MaxAddrs = 0 }, "max addresses per name"},
		{"cache without bytes", func(c *Config) { c.CacheBytes = 0 }, "cache bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Servers = []string{"127.0.0.1:53"}
			tc.mod(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

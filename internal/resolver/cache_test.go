package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestCacheTTLClamp(t *testing.T) {
	tests := []struct {
		name      string
		recordTTL int
		min, max  time.Duration
		wantTTL   time.Duration // 0: not cached at all
	}{
		{name: "TTL inside bounds", recordTTL: 30, min: 5 * time.Second, max: time.Minute, wantTTL: 30 * time.Second},
		{name: "TTL raised to floor", recordTTL: 2, min: 5 * time.Second, max: time.Minute, wantTTL: 5 * time.Second},
		{name: "TTL 0 raised to floor", recordTTL: 0, min: time.Second, max: time.Minute, wantTTL: time.Second},
		{name: "TTL cut to ceiling", recordTTL: 86400, min: 5 * time.Second, max: time.Minute, wantTTL: time.Minute},
		{name: "TTL 0 not cached with floor 0", recordTTL: 0, min: 0, max: time.Minute, wantTTL: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, "127.0.0.1", zone(t, dns.RcodeSuccess,
				fmt.Sprintf("ttl.example. %d IN A 192.0.2.1", tc.recordTTL)))
			r, clk := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.MinTTL, c.MaxTTL = tc.min, tc.max })
			lookup := func(wantCached bool, wantQueries int) {
				t.Helper()
				res, err := r.Lookup(context.Background(), "ttl.example")
				if err != nil {
					t.Fatal(err)
				}
				if res.Cached != wantCached || srv.queries(dns.TypeA) != wantQueries {
					t.Fatalf("at +%v: cached=%v queries=%d, want %v %d", clk.now().Sub(clockBase),
						res.Cached, srv.queries(dns.TypeA), wantCached, wantQueries)
				}
			}
			lookup(false, 1)
			if tc.wantTTL == 0 {
				lookup(false, 2)
				return
			}
			clk.advance(tc.wantTTL - time.Millisecond)
			lookup(true, 1)
			clk.advance(time.Millisecond)
			lookup(false, 2)
		})
	}
}

func TestCachedTTLCountsDown(t *testing.T) {
	srv := startServer(t, "127.0.0.1", zone(t, dns.RcodeSuccess, "down.example. 60 IN A 192.0.2.1"))
	r, clk := newTestResolver(t, []string{srv.addr}, nil)
	if _, err := r.Lookup(context.Background(), "down.example"); err != nil {
		t.Fatal(err)
	}
	clk.advance(20 * time.Second)
	res, err := r.Lookup(context.Background(), "down.example")
	if err != nil || !res.Cached || res.TTL != 40*time.Second {
		t.Fatalf("got cached=%v ttl=%v err=%v, want cached 40s", res.Cached, res.TTL, err)
	}
	// The caller's copy must not alias the cache.
	res.Addrs[0] = res.Addrs[0].Next()
	again, _ := r.Lookup(context.Background(), "down.example")
	if addrStrings(again) != "192.0.2.1" {
		t.Fatalf("cache corrupted by caller: %s", addrStrings(again))
	}
}

func TestNegativeCache(t *testing.T) {
	tests := []struct {
		name       string
		reply      func(t *testing.T) replyFunc
		negTTL     time.Duration
		wantErr    error
		wantCached bool
	}{
		{name: "NXDOMAIN cached", reply: func(t *testing.T) replyFunc { return zone(t, dns.RcodeNameError) },
			negTTL: 5 * time.Second, wantErr: ErrNXDomain, wantCached: true},
		{name: "NODATA cached", reply: func(t *testing.T) replyFunc { return zone(t, dns.RcodeSuccess) },
			negTTL: 5 * time.Second, wantErr: ErrNoAddresses, wantCached: true},
		{name: "NXDOMAIN not cached when disabled", reply: func(t *testing.T) replyFunc { return zone(t, dns.RcodeNameError) },
			negTTL: 0, wantErr: ErrNXDomain},
		{name: "SERVFAIL never cached", reply: func(t *testing.T) replyFunc { return zone(t, dns.RcodeServerFailure) },
			negTTL: 5 * time.Second, wantErr: ErrServerFailure},
		{name: "partial answer cached only for the negative TTL", reply: func(t *testing.T) replyFunc {
			return byType(zone(t, dns.RcodeSuccess, "neg.example. 300 IN A 192.0.2.1"), zone(t, dns.RcodeServerFailure))
		}, negTTL: 5 * time.Second, wantCached: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, "127.0.0.1", tc.reply(t))
			r, clk := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.NegativeTTL = tc.negTTL })
			for i, want := range []int{1, 1, 2} {
				if !tc.wantCached && i > 0 {
					want = i + 1
				}
				_, err := r.Lookup(context.Background(), "neg.example")
				if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("lookup %d: err = %v, want %v", i, err, tc.wantErr)
				}
				if got := srv.queries(dns.TypeA); got != want {
					t.Fatalf("lookup %d: %d A queries, want %d", i, got, want)
				}
				if i == 1 {
					clk.advance(tc.negTTL)
				}
			}
		})
	}
}

func TestCacheBoundLRU(t *testing.T) {
	srv := startServer(t, "127.0.0.1", func(req *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg).SetReply(req)
		if req.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}}}
		}
		return m
	})
	r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.CacheSize = 2 })
	steps := []struct {
		name       string
		wantCached bool
	}{
		{"a.example", false},
		{"b.example", false},
		{"a.example", true},  // a is now most recently used
		{"c.example", false}, // evicts b
		{"a.example", true},
		{"c.example", true},
		{"b.example", false}, // evicts a
		{"a.example", false},
	}
	for i, s := range steps {
		res, err := r.Lookup(context.Background(), s.name)
		if err != nil {
			t.Fatal(err)
		}
		if res.Cached != s.wantCached {
			t.Fatalf("step %d %s: cached = %v, want %v", i, s.name, res.Cached, s.wantCached)
		}
		if n := r.cache.len(); n > 2 {
			t.Fatalf("step %d: cache holds %d entries, bound is 2", i, n)
		}
	}
}

func TestCoalescing(t *testing.T) {
	release := make(chan struct{})
	answer := zone(t, dns.RcodeSuccess, "co.example. 60 IN A 192.0.2.3", "co.example. 60 IN AAAA 2001:db8::3")
	srv := startServer(t, "127.0.0.1", func(req *dns.Msg, tcp bool) *dns.Msg {
		<-release
		return answer(req, tcp)
	})
	r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.Timeout = 5 * time.Second })

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			res, err := r.Lookup(context.Background(), "co.example")
			if err == nil && addrStrings(res) != "192.0.2.3,2001:db8::3" {
				err = fmt.Errorf("addrs %s", addrStrings(res))
			}
			errs <- err
		})
	}
	waitFor(t, func() bool { return srv.queries(dns.TypeA) == 1 && srv.queries(dns.TypeAAAA) == 1 })
	time.Sleep(50 * time.Millisecond) // let stragglers reach the flight or the cache
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if a, aaaa := srv.queries(dns.TypeA), srv.queries(dns.TypeAAAA); a != 1 || aaaa != 1 {
		t.Errorf("server saw %d A and %d AAAA queries for %d lookups, want 1 each", a, aaaa, n)
	}
}

func TestWaiterCancellationReturnsPromptly(t *testing.T) {
	release := make(chan struct{})
	srv := startServer(t, "127.0.0.1", func(req *dns.Msg, _ bool) *dns.Msg {
		<-release
		return nil
	})
	// Registered after startServer so it runs before the server shutdown,
	// which waits for this handler.
	t.Cleanup(func() { close(release) })
	r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.Timeout = 3 * time.Second })
	go r.Lookup(context.Background(), "hang.example") //nolint:errcheck // the flight other callers join

	waitFor(t, func() bool { return srv.queries(dns.TypeA) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Lookup(ctx, "hang.example")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context deadline exceeded", err)
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("cancelled waiter returned after %v", took)
	}
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCacheStats: Config.Stats counts a lookup answered from the cache as a
// hit (positive and negative answers, Lookup and Query) and every other
// as a miss; a stats value shared by two resolvers adds both up.
func TestCacheStats(t *testing.T) {
	type step struct {
		name  string
		qtype uint16 // 0: Lookup
	}
	tests := []struct {
		name   string
		reply  func(t *testing.T) replyFunc
		mod    func(*Config)
		steps  []step
		hits   uint64
		misses uint64
	}{
		{name: "a positive answer, then from the cache", reply: func(t *testing.T) replyFunc {
			return zone(t, dns.RcodeSuccess, "a.example. 300 IN A 192.0.2.1")
		}, steps: []step{{"a.example", 0}, {"a.example", 0}, {"a.example", 0}}, hits: 2, misses: 1},
		{name: "NXDOMAIN, then from the negative cache", reply: func(t *testing.T) replyFunc { return zone(t, dns.RcodeNameError) },
			steps: []step{{"nx.example", 0}, {"nx.example", 0}}, hits: 1, misses: 1},
		{name: "Query of another type", reply: func(t *testing.T) replyFunc {
			return zone(t, dns.RcodeSuccess, "a.example. 300 IN TXT \"x\"")
		}, steps: []step{{"a.example", dns.TypeTXT}, {"a.example", dns.TypeTXT}}, hits: 1, misses: 1},
		{name: "Query of A is Lookup's, counted once", reply: func(t *testing.T) replyFunc {
			return zone(t, dns.RcodeSuccess, "a.example. 300 IN A 192.0.2.1")
		}, steps: []step{{"a.example", dns.TypeA}, {"a.example", 0}}, hits: 1, misses: 1},
		{name: "no cache: every lookup misses", reply: func(t *testing.T) replyFunc {
			return zone(t, dns.RcodeSuccess, "a.example. 300 IN A 192.0.2.1")
		}, mod: func(c *Config) { c.CacheSize = 0 }, steps: []step{{"a.example", 0}, {"a.example", 0}}, misses: 2},
		{name: "an invalid name is no lookup", reply: func(t *testing.T) replyFunc { return zone(t, dns.RcodeNameError) },
			steps: []step{{"bad..example", 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, "127.0.0.1", tc.reply(t))
			stats := &CacheStats{}
			r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) {
				c.Stats = stats
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			for _, s := range tc.steps {
				if s.qtype == 0 {
					_, _ = r.Lookup(context.Background(), s.name)
				} else {
					_, _ = r.Query(context.Background(), s.name, s.qtype)
				}
			}
			if h, m := stats.Hits.Load(), stats.Misses.Load(); h != tc.hits || m != tc.misses {
				t.Errorf("hits %d, misses %d; want %d, %d", h, m, tc.hits, tc.misses)
			}
		})
	}
	t.Run("shared by a resolver that replaces another", func(t *testing.T) {
		srv := startServer(t, "127.0.0.1", zone(t, dns.RcodeSuccess, "a.example. 300 IN A 192.0.2.1"))
		stats := &CacheStats{}
		for range 2 {
			r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.Stats = stats })
			_, _ = r.Lookup(context.Background(), "a.example")
			_, _ = r.Lookup(context.Background(), "a.example")
		}
		if h, m := stats.Hits.Load(), stats.Misses.Load(); h != 2 || m != 2 {
			t.Errorf("hits %d, misses %d; want 2, 2 (each resolver has its own cache)", h, m)
		}
	})
}

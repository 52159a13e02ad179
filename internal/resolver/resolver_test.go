package resolver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLookupAnswers(t *testing.T) {
	refused := func(req *dns.Msg, _ bool) *dns.Msg { return new(dns.Msg).SetRcode(req, dns.RcodeRefused) }
	wrongQuestion := func(req *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg).SetReply(req)
		m.Question[0].Name = "other.example."
		m.Answer = []dns.RR{mustRR(t, "other.example. 60 IN A 192.0.2.9")}
		return m
	}
	var chain9 []string
	for i := range 9 {
		chain9 = append(chain9, fmt.Sprintf("c%d.example. 60 IN CNAME c%d.example.", i, i+1))
	}
	chain9 = append(chain9, "c9.example. 60 IN A 192.0.2.99")

	tests := []struct {
		name      string
		lookup    string
		reply     replyFunc
		wantAddrs string // comma-joined, "" when an error is expected
		wantErr   error
		wantRcode int
		wantCanon string
		wantTTL   time.Duration
		partial   bool
	}{
		{
			name:   "A and AAAA, A first, deduplicated",
			lookup: "www.example.com",
			reply: zone(t, dns.RcodeSuccess,
				"www.example.com. 60 IN AAAA 2001:db8::1",
				"www.example.com. 30 IN A 192.0.2.1",
				"www.example.com. 60 IN A 192.0.2.2",
				"www.example.com. 60 IN A 192.0.2.1"),
			wantAddrs: "192.0.2.1,192.0.2.2,2001:db8::1",
			wantCanon: "www.example.com",
			wantTTL:   30 * time.Second,
		},
		{
			name:   "mixed case with trailing dot",
			lookup: "WWW.Example.COM.",
			reply:  zone(t, dns.RcodeSuccess, "www.example.com. 60 IN A 192.0.2.1"),
			// AAAA gets NOERROR with no records: NODATA for that family only.
			wantAddrs: "192.0.2.1",
			wantCanon: "www.example.com",
			wantTTL:   60 * time.Second,
		},
		{
			name:   "CNAME chain followed, out-of-chain records ignored",
			lookup: "www.example.com",
			reply: zone(t, dns.RcodeSuccess,
				"b.example.net. 300 IN A 192.0.2.10",
				"www.example.com. 100 IN CNAME a.example.org.",
				"evil.example. 60 IN A 203.0.113.66",
				"a.example.org. 20 IN A 203.0.113.67", // a CNAME owner cannot own an A
				"a.example.org. 40 IN CNAME B.example.net.",
				"b.example.net. 300 IN AAAA 2001:db8::10"),
			wantAddrs: "192.0.2.10,2001:db8::10",
			wantCanon: "b.example.net",
			wantTTL:   40 * time.Second,
		},
		{
			name:      "CNAME chain longer than 8 hops",
			lookup:    "c0.example",
			reply:     zone(t, dns.RcodeSuccess, chain9...),
			wantErr:   ErrServerFailure,
			wantRcode: -1,
		},
		{
			name:   "CNAME chain of exactly 8 hops",
			lookup: "c1.example",
			reply:  zone(t, dns.RcodeSuccess, chain9...),
			// c1 -> c9 is 8 hops.
			wantAddrs: "192.0.2.99",
			wantCanon: "c9.example",
			wantTTL:   60 * time.Second,
		},
		{
			name:   "CNAME loop",
			lookup: "loop.example",
			reply: zone(t, dns.RcodeSuccess,
				"loop.example. 60 IN CNAME loop2.example.",
				"loop2.example. 60 IN CNAME loop.example."),
			wantErr:   ErrServerFailure,
			wantRcode: -1,
		},
		{
			name:   "v4-mapped AAAA is unmapped and deduplicated",
			lookup: "mapped.example",
			reply: zone(t, dns.RcodeSuccess,
				"mapped.example. 60 IN A 127.0.0.1",
				"mapped.example. 60 IN AAAA ::ffff:127.0.0.1",
				"mapped.example. 60 IN AAAA ::ffff:10.0.0.1"),
			wantAddrs: "127.0.0.1,10.0.0.1",
			wantCanon: "mapped.example",
			wantTTL:   60 * time.Second,
		},
		{name: "NXDOMAIN", lookup: "nope.example", reply: zone(t, dns.RcodeNameError), wantErr: ErrNXDomain, wantRcode: -1},
		{name: "NODATA", lookup: "empty.example", reply: zone(t, dns.RcodeSuccess), wantErr: ErrNoAddresses, wantRcode: -1},
		{name: "SERVFAIL", lookup: "broken.example", reply: zone(t, dns.RcodeServerFailure), wantErr: ErrServerFailure, wantRcode: dns.RcodeServerFailure},
		{name: "REFUSED", lookup: "refused.example", reply: refused, wantErr: ErrServerFailure, wantRcode: dns.RcodeRefused},
		{name: "reply to another question", lookup: "q.example", reply: wrongQuestion, wantErr: ErrServerFailure, wantRcode: -1},
		{
			name:   "AAAA fails, A answers: partial result",
			lookup: "half.example",
			reply: byType(zone(t, dns.RcodeSuccess, "half.example. 60 IN A 192.0.2.5"),
				zone(t, dns.RcodeServerFailure)),
			wantAddrs: "192.0.2.5",
			wantCanon: "half.example",
			wantTTL:   60 * time.Second,
			partial:   true,
		},
		{
			name:      "A NODATA, AAAA SERVFAIL: the failure is reported",
			lookup:    "halfbroken.example",
			reply:     byType(zone(t, dns.RcodeSuccess), zone(t, dns.RcodeServerFailure)),
			wantErr:   ErrServerFailure,
			wantRcode: dns.RcodeServerFailure,
		},
		{
			name:      "NXDOMAIN on one family wins over a failure",
			lookup:    "gone.example",
			reply:     byType(zone(t, dns.RcodeServerFailure), zone(t, dns.RcodeNameError)),
			wantErr:   ErrNXDomain,
			wantRcode: -1,
		},
		{name: "invalid name", lookup: "bad name.example", reply: zone(t, dns.RcodeSuccess), wantErr: ErrInvalidName, wantRcode: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, "127.0.0.1", tc.reply)
			r, _ := newTestResolver(t, []string{srv.addr}, nil)
			res, err := r.Lookup(context.Background(), tc.lookup)
			if tc.wantErr != nil {
				checkLookupError(t, err, tc.wantErr, tc.wantRcode)
				return
			}
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tc.lookup, err)
			}
			if got := addrStrings(res); got != tc.wantAddrs {
				t.Errorf("addrs = %s, want %s", got, tc.wantAddrs)
			}
			if res.Canonical != tc.wantCanon || res.TTL != tc.wantTTL || res.Server != srv.addr || res.Cached {
				t.Errorf("canonical=%q ttl=%v server=%q cached=%v, want %q %v %q false",
					res.Canonical, res.TTL, res.Server, res.Cached, tc.wantCanon, tc.wantTTL, srv.addr)
			}
			if (res.Partial != nil) != tc.partial {
				t.Errorf("partial = %v, want partial=%v", res.Partial, tc.partial)
			}
		})
	}
}

func checkLookupError(t *testing.T, err, want error, rcode int) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	var le *LookupError
	if !errors.As(err, &le) {
		t.Fatalf("err %T is not a *LookupError", err)
	}
	if le.Rcode != rcode {
		t.Errorf("rcode = %d, want %d (%v)", le.Rcode, rcode, err)
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

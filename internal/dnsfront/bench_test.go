package dnsfront

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cachedDecider answers like the proxy does for a cached name: records
// built anew for each query (as resolver.Result.Records builds them).
type cachedDecider struct{ rrs []dns.RR }

func (c cachedDecider) Decide(_ context.Context, _ *Query) Decision {
	return Decision{Verdict: Answer, Records: copyRRs(c.rrs), Strip: Strip{ECH: true, Hints: true}, Reason: "allowed"}
}

// BenchmarkHandleCached measures dnsfront's share of a cached lookup: parse
// the query, normalise the name, call the Decider (which answers at once),
// strip and pack the reply.
func BenchmarkHandleCached(b *testing.B) {
	d := cachedDecider{rrs: mustRRs(b, "www.example.com. 60 IN CNAME edge.example.net.",
		"edge.example.net. 60 IN A 192.0.2.1", "edge.example.net. 60 IN A 192.0.2.2")}
	h := &handler{decide: d, timeout: DefaultQueryTimeout}
	msg := packQuery(b, "www.example.com.", dns.TypeA, 1232)
	out := make([]byte, 0, ednsSize)
	b.ReportAllocs()
	for b.Loop() {
		if r := h.handle(context.Background(), msg, out[:0], &Query{}); len(r) < 40 {
			b.Fatal("no answer")
		}
	}
}

// BenchmarkUDPRoundTrip measures a cached lookup through a real listener
// on loopback: the client's send, the server's read, handling and reply,
// and the client's read. The client's share is included.
func BenchmarkUDPRoundTrip(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs CAP_NET_ADMIN for transparent sockets")
	}
	d := cachedDecider{rrs: mustRRs(b, "www.example.com. 60 IN A 192.0.2.1", "www.example.com. 60 IN A 192.0.2.2")}
	s, err := NewServer(Config{Decider: d})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l, err := s.Listen(context.Background(), 1, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := net.Dial("udp", l.udp.LocalAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := packQuery(b, "www.example.com.", dns.TypeA, 1232)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err != nil || n < 40 {
			b.Fatalf("reply: %v", err)
		}
	}
}

package resolver

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// replyFunc builds the reply to req; nil means "do not answer".
type replyFunc func(req *dns.Msg, tcp bool) *dns.Msg

// testServer is a real miekg/dns server on loopback (UDP and TCP on the
// same port) that counts the queries it receives.
type testServer struct {
	addr string
	mu   sync.Mutex
	udp  map[uint16]int // queries per qtype over UDP
	tcp  map[uint16]int // queries per qtype over TCP
}

// queries returns how many qtype queries arrived over UDP and TCP together.
func (s *testServer) queries(qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udp[qtype] + s.tcp[qtype]
}

// tcpQueries returns how many queries of any type arrived over TCP.
func (s *testServer) tcpQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.tcp {
		n += c
	}
	return n
}

// startServer runs a DNS server on host ("127.0.0.1" or "::1") until the
// test ends.
func startServer(t testing.TB, host string, reply replyFunc) *testServer {
	t.Helper()
	pc, ln := listenPair(t, host)
	s := &testServer{addr: pc.LocalAddr().String(), udp: map[uint16]int{}, tcp: map[uint16]int{}}
	handler := func(tcp bool) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			s.mu.Lock()
			if tcp {
				s.tcp[req.Question[0].Qtype]++
			} else {
				s.udp[req.Question[0].Qtype]++
			}
			s.mu.Unlock()
			if m := reply(req, tcp); m != nil {
				_ = w.WriteMsg(m)
			}
		}
	}
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: handler(false)},
		{Listener: ln, Handler: handler(true)},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.ShutdownContext(ctx)
			<-done
		})
	}
	return s
}

// listenPair binds UDP and TCP sockets on the same random port.
func listenPair(t testing.TB, host string) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatalf("listen udp on %s: %v", host, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("could not bind UDP and TCP on one port")
	return nil, nil
}

// silentServer is a UDP socket that never answers; returns its address.
func silentServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// closedPort returns a loopback UDP address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// zone answers every question with rcode and, for NOERROR, every record
// in rrs whose type is CNAME or the question's type, whatever its owner:
// a careless server, so the resolver's own filtering is what is tested.
func zone(t testing.TB, rcode int, rrs ...string) replyFunc {
	t.Helper()
	parsed := make([]dns.RR, 0, len(rrs))
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad test record %q: %v", s, err)
		}
		parsed = append(parsed, rr)
	}
	return func(req *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(req, rcode)
		qt := req.Question[0].Qtype
		for _, rr := range parsed {
			if t := rr.Header().Rrtype; t == qt || t == dns.TypeCNAME {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		return m
	}
}

// byType answers A and AAAA questions with separate reply functions.
func byType(a, aaaa replyFunc) replyFunc {
	return func(req *dns.Msg, tcp bool) *dns.Msg {
		if req.Question[0].Qtype == dns.TypeA {
			return a(req, tcp)
		}
		return aaaa(req, tcp)
	}
}

// fakeClock is an injectable clock for cache expiry.
type fakeClock struct{ off atomic.Int64 }

var clockBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return clockBase.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// newTestResolver builds a resolver for servers with defaults, a fake
// clock and a short timeout, after mod adjusts the config.
func newTestResolver(t testing.TB, servers []string, mod func(*Config)) (*Resolver, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	cfg := DefaultConfig()
	cfg.Servers = servers
	cfg.Timeout = time.Second
	cfg.Now = clk.now
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, clk
}

// addrStrings renders addresses for comparison in failure messages.
func addrStrings(r Result) string {
	s := make([]string, len(r.Addrs))
	for i, a := range r.Addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

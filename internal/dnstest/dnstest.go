// Package dnstest runs a small authoritative DNS server for tests: a zone of
// A and AAAA records, records of any other type (HTTPS, SVCB, TXT, ...),
// per-name answer functions for tricks such as DNS rebinding, and a count
// of the queries it received. It is test support and
// is never linked into the egressfw binary.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// AnswerFunc returns the addresses to answer for a query of qtype
// (dns.TypeA or dns.TypeAAAA); n counts the queries for this name so far,
// starting at 1. ok=false answers NXDOMAIN.
type AnswerFunc func(qtype uint16, n int) (addrs []netip.Addr, ok bool)

// Server is a running test DNS server on UDP and TCP.
type Server struct {
	Addr string // "ip:port"

	ttl atomic.Uint32 // TTL of every answer (default 0); see SetTTL

	mu      sync.Mutex
	static  map[string][]netip.Addr
	cnames  map[string]string
	records map[string][]dns.RR // by owner, any type
	funcs   map[string]AnswerFunc
	perName map[string]int
	queries atomic.Int64
	udp     *dns.Server
	tcp     *dns.Server
}

// Start serves on addr ("127.0.0.1:0" for a free port) until Close.
func Start(addr string) (*Server, error) {
	s := &Server{static: map[string][]netip.Addr{}, cnames: map[string]string{}, records: map[string][]dns.RR{},
		funcs: map[string]AnswerFunc{}, perName: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	// With port 0 the free UDP port may be taken for TCP: try a few.
	for range 20 {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, err
	}
	s.Addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	go func() { _ = s.udp.ActivateAndServe() }()
	go func() { _ = s.tcp.ActivateAndServe() }()
	return s, nil
}

// New starts a server on a free loopback port and closes it with the test.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start test DNS server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// SetTTL sets the TTL of every answer from now on. It is safe to call
// while the server answers (a plain field would race with its handlers).
func (s *Server) SetTTL(seconds uint32) { s.ttl.Store(seconds) }

// Close stops the server.
func (s *Server) Close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
}

// Set makes name answer with addrs (A for IPv4, AAAA for IPv6).
func (s *Server) Set(name string, addrs ...string) {
	as := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		as[i] = netip.MustParseAddr(a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.static[canonical(name)] = as
}

// SetCNAME makes name an alias of target: a query for name is answered
// with the CNAME chain from it (followed within this server, at most 16
// hops) and the addresses of the chain's end.
func (s *Server) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cnames[canonical(name)] = canonical(target)
}

// SetRecords adds records in zone-file syntax ("svc.example. 60 IN HTTPS
// 1 . alpn=h3,h2 ech=AEn+DQ=="): a question of a record's type about its
// owner is answered with every such record, TTLs as written. An owner with
// records but none of the asked type answers NODATA.
func (s *Server) SetRecords(rrs ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range rrs {
		rr, err := dns.NewRR(text)
		if err != nil {
			return err
		}
		owner := canonical(rr.Header().Name)
		s.records[owner] = append(s.records[owner], rr)
	}
	return nil
}

// SetFunc makes name answer with whatever f returns.
func (s *Server) SetFunc(name string, f AnswerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.funcs[canonical(name)] = f
}

// Queries returns how many queries the server has received.
func (s *Server) Queries() int64 { return s.queries.Load() }

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	owner := q.Name
	for range 16 {
		target, ok := s.cname(canonical(owner))
		if !ok {
			break
		}
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: s.ttl.Load()}, Target: target})
		owner = target
	}
	addrs, ok := s.answer(canonical(owner), q.Qtype)
	rrs, exists := s.recordsOf(canonical(owner), q.Qtype)
	if !ok && !exists {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		rr.Header().Name = owner
		m.Answer = append(m.Answer, rr)
	}
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: s.ttl.Load()}
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	if w.LocalAddr().Network() == "udp" { // too big for UDP: truncated, the client retries over TCP
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// recordsOf returns copies of name's records of qtype, and whether name
// has records of any type.
func (s *Server) recordsOf(name string, qtype uint16) ([]dns.RR, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []dns.RR
	for _, rr := range s.records[name] {
		if rr.Header().Rrtype == qtype {
			out = append(out, dns.Copy(rr))
		}
	}
	return out, len(s.records[name]) > 0
}

func (s *Server) cname(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.cnames[name]
	return t, ok
}

func (s *Server) answer(name string, qtype uint16) ([]netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.funcs[name]; ok {
		s.perName[name]++
		n := s.perName[name]
		s.mu.Unlock()
		defer s.mu.Lock()
		return f(qtype, n)
	}
	a, ok := s.static[name]
	return a, ok
}

package main

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// zone answers from fixed records and from rotating ones (DNS rebinding:
// each query of a rotating name gets the next address in turn), always
// with TTL 0 so no resolver may cache.
type zone struct {
	static, rotate map[string]Record
	mu             sync.Mutex
	turn           map[string]int // name+type -> queries so far
}

func newZone(static, rotate map[string]Record) *zone {
	z := &zone{static: map[string]Record{}, rotate: map[string]Record{}, turn: map[string]int{}}
	for n, r := range static {
		z.static[dns.Fqdn(strings.ToLower(n))] = r
	}
	for n, r := range rotate {
		z.rotate[dns.Fqdn(strings.ToLower(n))] = r
	}
	return z
}

// answer returns the addresses for name and qtype and whether the name exists.
func (z *zone) answer(name string, qtype uint16) ([]string, bool) {
	pick := func(r Record) []string {
		if qtype == dns.TypeAAAA {
			return r.AAAA
		}
		if qtype == dns.TypeA {
			return r.A
		}
		return nil
	}
	if r, ok := z.rotate[name]; ok {
		all := pick(r)
		if len(all) == 0 {
			return nil, true
		}
		z.mu.Lock()
		k := fmt.Sprintf("%s/%d", name, qtype)
		i := z.turn[k]
		z.turn[k]++
		z.mu.Unlock()
		return []string{all[i%len(all)]}, true
	}
	r, ok := z.static[name]
	return pick(r), ok
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		owner := q.Name
		var chain []string
		for range 16 { // a CNAME chain inside the zone, as an authoritative server answers it
			r, ok := z.static[name]
			if !ok || len(r.CNAME) == 0 {
				break
			}
			target := dns.Fqdn(strings.ToLower(r.CNAME[0]))
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Class: dns.ClassINET, Rrtype: dns.TypeCNAME}, Target: target})
			chain = append(chain, target)
			owner, name = target, target
		}
		addrs, ok := z.answer(name, q.Qtype)
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		if q.Qtype == dns.TypeHTTPS {
			for _, rdata := range z.static[name].HTTPS {
				if rr, err := dns.NewRR(owner + " 0 IN HTTPS " + rdata); err == nil {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: 0, Rrtype: q.Qtype}
			ip := net.ParseIP(a)
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip.To4()})
			} else {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip.To16()})
			}
		}
		event(map[string]any{"ev": "dns", "name": strings.ToLower(q.Name), "type": dns.TypeToString[q.Qtype],
			"cname": chain, "answer": addrs, "exists": ok})
	}
	if w.LocalAddr().Network() == "udp" { // too big for UDP: truncated, the client retries over TCP
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// serveDNS starts UDP and TCP servers on every address and returns once
// they listen.
func serveDNS(addrs []string, z *zone) error {
	for _, a := range addrs {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			return fmt.Errorf("listen dns udp %s: %w", a, err)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("listen dns tcp %s: %w", a, err)
		}
		go (&dns.Server{PacketConn: pc, Handler: z}).ActivateAndServe()
		go (&dns.Server{Listener: ln, Handler: z}).ActivateAndServe()
	}
	return nil
}

// Command dnsd is the benchmark's DNS server: it answers A queries for the
// names given with -record, empty NOERROR for their other types, and
// NXDOMAIN for everything else, over UDP and TCP.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

type records map[string]net.IP

func (r records) String() string { return fmt.Sprint(map[string]net.IP(r)) }

// Set parses NAME=IPv4.
func (r records) Set(s string) error {
	name, ip, ok := strings.Cut(s, "=")
	addr := net.ParseIP(ip).To4()
	if !ok || addr == nil {
		return fmt.Errorf("record %q: want NAME=IPv4", s)
	}
	r[dns.Fqdn(strings.ToLower(name))] = addr
	return nil
}

func main() {
	recs := records{}
	listen := flag.String("listen", "127.0.0.1:53", "address to serve on (UDP and TCP)")
	ttl := flag.Uint("ttl", 60, "TTL of every answer, seconds")
	flag.Var(recs, "record", "NAME=IPv4 (repeatable)")
	flag.Parse()

	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		if len(q.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
		} else if ip, ok := recs[strings.ToLower(q.Question[0].Name)]; !ok {
			m.Rcode = dns.RcodeNameError
		} else if q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{A: ip, Hdr: dns.RR_Header{Name: q.Question[0].Name,
				Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: uint32(*ttl)}})
		}
		_ = w.WriteMsg(m)
	})
	errs := make(chan error, 2)
	for _, netw := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *listen, Net: netw, Handler: h}
		go func() { errs <- srv.ListenAndServe() }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-errs:
		log.Fatalf("dnsd: serve %s: %v", *listen, err)
	case <-sig:
	}
}

//go:build system

// Command httpd is the system test's upstream: a tiny HTTP server answering
// "hello from ADDR" on each address given, and a DNS server mapping names
// to addresses, run inside the container's "servers" network namespace.
//
//	httpd -http 192.0.2.10:80,10.1.2.3:80 -dns 192.0.2.53:53 -names public.systest=192.0.2.10,internal.systest=10.1.2.3
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/miekg/dns"
)

func main() {
	httpAddrs := flag.String("http", "", "comma-separated listen addresses for HTTP")
	dnsAddr := flag.String("dns", "", "listen address for DNS (UDP and TCP)")
	names := flag.String("names", "", "comma-separated name=IPv4 pairs the DNS server answers")
	flag.Parse()

	for _, a := range strings.Split(*httpAddrs, ",") {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			log.Fatalf("listening on %s: %v", a, err)
		}
		go func() {
			log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "hello from %s\n", ln.Addr())
			})))
		}()
	}
	if *dnsAddr != "" {
		zone := map[string]net.IP{}
		for _, kv := range strings.Split(*names, ",") {
			k, v, _ := strings.Cut(kv, "=")
			zone[dns.Fqdn(k)] = net.ParseIP(v).To4()
		}
		dns.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			ip, ok := zone[strings.ToLower(q.Question[0].Name)]
			switch {
			case !ok:
				m.Rcode = dns.RcodeNameError
			case q.Question[0].Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name,
					Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: ip})
			}
			w.WriteMsg(m)
		})
		for _, proto := range []string{"udp", "tcp"} {
			srv := &dns.Server{Addr: *dnsAddr, Net: proto}
			go func() { log.Fatal(srv.ListenAndServe()) }()
		}
	}
	select {}
}

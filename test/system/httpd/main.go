//go:build system

// Command httpd is the system test's upstream: a tiny HTTP server answering
// "hello from ADDR" on each address given, and a DNS server mapping names
// to addresses, run inside the container's "servers" network namespace.
// With -engine it is a Docker Engine API instead (dockertest.FakeEngine),
// on a unix socket of group -engine-group, describing the containers
// -containers gives (JSON).
//
//	httpd -http 192.0.2.10:80,10.1.2.3:80 -dns 192.0.2.53:53 -names public.systest=192.0.2.10,internal.systest=10.1.2.3
//	httpd -engine /run/docker.sock -engine-group docker -containers '[{"ID": "...", ...}]'
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/egressfw/egressfw/internal/dockertest"
	"github.com/miekg/dns"
)

func main() {
	httpAddrs := flag.String("http", "", "comma-separated listen addresses for HTTP")
	dnsAddr := flag.String("dns", "", "listen address for DNS (UDP and TCP)")
	names := flag.String("names", "", "comma-separated name=IPv4 pairs the DNS server answers")
	engine := flag.String("engine", "", "serve a Docker Engine API on this unix socket")
	group := flag.String("engine-group", "", "the group the engine's socket belongs to (mode 0660)")
	containers := flag.String("containers", "[]", "the engine's containers (JSON, dockertest.FakeContainer)")
	flag.Parse()
	if *engine != "" {
		log.Fatal(serveEngine(*engine, *group, *containers))
	}

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

// serveEngine serves a fake Docker Engine API with containers (JSON) on a
// unix socket at path, root:group 0660 as dockerd makes its own.
func serveEngine(path, group, containers string) error {
	var cs []dockertest.FakeContainer
	if err := json.Unmarshal([]byte(containers), &cs); err != nil {
		return fmt.Errorf("-containers: %w", err)
	}
	e := dockertest.NewFakeEngine()
	e.Set(cs)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return err
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, 0, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return err
	}
	return http.Serve(ln, e.Handler())
}

package resolver

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzParseResolvConf checks the parser never panics and every server it
// returns is a usable ip:53.
func FuzzParseResolvConf(f *testing.F) {
	f.Add("nameserver 192.0.2.1\noptions attempts:2\n")
	f.Fuzz(func(t *testing.T, in string) {
		rc, err := ParseResolvConf(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, s := range rc.Servers {
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() != 53 || ap.Addr().Is4In6() {
				t.Fatalf("server %q from %q is not a plain ip:53", s, in)
			}
		}
		if rc.Attempts < 0 || rc.Attempts > maxAttempts {
			t.Fatalf("attempts %d out of range", rc.Attempts)
		}
	})
}

// FuzzExtract feeds arbitrary DNS replies to the answer walker: it must not
// panic, and may only return unmapped addresses of the asked family owned by
// the end of the chain it reports.
func FuzzExtract(f *testing.F) {
	m := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
	m.Response = true
	for _, s := range []string{
		"www.example.com. 60 IN CNAME a.example.net.",
		"a.example.net. 30 IN A 192.0.2.1",
		"evil.example. 30 IN A 203.0.113.1",
	} {
		rr, _ := dns.NewRR(s)
		m.Answer = append(m.Answer, rr)
	}
	wire, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire)
	f.Fuzz(func(t *testing.T, wire []byte) {
		var msg dns.Msg
		if msg.Unpack(wire) != nil {
			return
		}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			addrs, _, aliases, err := extract(&msg, "www.example.com.", qtype)
			if err != nil {
				continue
			}
			if len(aliases) > maxCNAMEChain {
				t.Fatalf("followed %d CNAMEs, bound is %d", len(aliases), maxCNAMEChain)
			}
			canon := "www.example.com."
			if len(aliases) > 0 {
				canon = aliases[len(aliases)-1]
			}
			owners := map[string]bool{}
			for _, rr := range msg.Answer {
				if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, canon) {
					owners[canon] = true
				}
			}
			for _, a := range addrs {
				if !a.IsValid() || a.Is4In6() || (qtype == dns.TypeA && !a.Is4()) || !owners[canon] {
					t.Fatalf("bad address %v (canonical %q) for qtype %d", a, canon, qtype)
				}
			}
		}
	})
}

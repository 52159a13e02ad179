package main

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/egressfw/egressfw/internal/dnstest"
)

// TestExplainLookup: `egressfw explain --dns` prints what the tenant's own
// DNS query would be answered, from the code path its DNS listener uses:
// the validated addresses, NXDOMAIN for a refused name (the reason said,
// the internal address only to the operator), REFUSED for a type the
// tenant may not ask, HTTPS records stripped.
func TestExplainLookup(t *testing.T) {
	dns := dnstest.New(t)
	dns.Set("www.example.com", "198.51.100.10", "2001:db8::10")
	dns.Set("bi-tool.example.com", "10.20.0.10")
	if err := dns.SetRecords(`www.example.com. 60 IN HTTPS 1 . alpn="h3,h2" ech="AEn+DQ=="`); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`
[dns]
servers = [%q]
[policy]
public_cidrs = ["198.51.100.0/24", "2001:db8::/32"]
[[tenant]]
name = "web"
uids = [1000]
[[tenant]]
name = "resolves"
uids = [1001]
dns = "direct"
`, dns.Addr))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"public A", []string{"www.example.com"}, exitOK,
			[]string{"query:       www.example.com A", "answer:      NOERROR", "www.example.com. 1 IN A 198.51.100.10"}},
		{"public AAAA", []string{"--type", "aaaa", "www.example.com"}, exitOK, []string{"IN AAAA 2001:db8::10"}},
		{"HTTPS stripped", []string{"--type", "HTTPS", "www.example.com"}, exitOK,
			[]string{`IN HTTPS 1 . alpn="h2"`, "stripped:    ech 1, address hints 0, QUIC-only alpn values 1, records 0"}},
		{"internal name", []string{"bi-tool.example.com"}, exitFail,
			[]string{"answer:      NXDOMAIN", "internal_address", "10.20.0.10", "logged:      yes (refused)"}},
		{"type not asked for", []string{"--type", "TXT", "www.example.com"}, exitFail, []string{"answer:      REFUSED", "query_type"}},
		{"meta type", []string{"--type", "ANY", "www.example.com"}, exitUsage, []string{"not a DNS data type"}},
		{"tenant resolving itself", []string{"--tenant", "resolves", "www.example.com"}, exitUsage, []string{`dns = "direct"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Flags first, the name last, as each case lists them.
			code, out, errOut := run(append([]string{"explain", "--config", cfg, "--tenant", "web", "--dns"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
}

// TestExplainLookupUpstreamFails: a name whose addresses are public but
// whose HTTPS question the upstream fails is explained as the tenant gets
// it: SERVFAIL for the failure, not "allowed".
func TestExplainLookupUpstreamFails(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		switch q := req.Question[0]; q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(198, 51, 100, 20)})
		case dns.TypeAAAA:
		default:
			m.Rcode = dns.RcodeServerFailure
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	cfg := writeConfig(t, fmt.Sprintf(`
[dns]
servers = [%q]
[policy]
public_cidrs = ["198.51.100.0/24"]
[[tenant]]
name = "web"
uids = [1000]
`, pc.LocalAddr().String()))
	code, out, errOut := run("explain", "--config", cfg, "--tenant", "web", "--dns", "--type", "HTTPS", "fails.example.com")
	if code != exitOK {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitOK, out, errOut)
	}
	for _, w := range []string{"answer:      SERVFAIL", "reason:      dns_failure (the name: allowed)"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "reason:      allowed") {
		t.Errorf("the failure explained as allowed:\n%s", out)
	}
}

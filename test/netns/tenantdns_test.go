package netns

import (
	"strings"
	"testing"
	"time"
)

// TestTenantDNS: the tenants' configs are today's, each with an
// allow_direct hole to the split-horizon resolver. egressfw now answers
// every DNS query they send, to that resolver or to any other address,
// over UDP and TCP, IPv4 and IPv6: public names resolve to the addresses
// egressfw validates, the BI tool's name and the metadata name do not
// exist for them (the reason in an Extended DNS Error, deny_detail full),
// a name allow_internal covers resolves, a type they may not ask is
// REFUSED; the host's own processes still resolve the BI tool through the
// same resolver. glibc (getent), Go's resolver and curl resolve through
// the tenant path; an HTTPS record served upstream with ech and h3 reaches
// the tenant without them; a report-mode tenant gets the internal answer
// and a would_deny line; each refusal is logged with the address the
// tenant asked.
func TestTenantDNS(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	tenants := tp.tenant("a", "a", 0, "  [[tenant.allow_internal]]\n  host = \"svc.example.com\"\n  ports = [80]\n") +
		tp.tenant("u", "", tp.uid, "") + tp.tenant("rep", "b", 0, `mode = "report"`)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tenants}))
	a, u := tp.inCgroup("a"), tp.asUID()

	t.Run("dig", func(t *testing.T) {
		for _, server := range []string{ipDNS, ipForeignDNS, ip6ForeignDNS, ipStubDNS} {
			for _, tcp := range []bool{false, true} {
				label := server + map[bool]string{false: " udp", true: " tcp"}[tcp]
				for _, w := range []who{a, u} {
					if r := tp.dig(w, server, "www.example.com", "A", tcp); r.status != "NOERROR" || len(r.answers) != 1 || !r.has("IN A "+ipPublic) {
						t.Errorf("%s %s: www A: %v\n%s", w.label, label, r, r.out)
					}
					if r := tp.dig(w, server, "bi-tool.example.com", "A", tcp); r.status != "NXDOMAIN" || len(r.answers) != 0 {
						t.Errorf("%s %s: bi-tool A: %v, want NXDOMAIN: the split-horizon name must not resolve for a tenant", w.label, label, r)
					}
				}
			}
		}
		for _, c := range []struct {
			w            who
			name, qtype  string
			status, addr string
			ede          string
		}{
			{a, "www.example.com", "AAAA", "NOERROR", ip6Public, ""},
			{a, "bi-tool.example.com", "AAAA", "NXDOMAIN", "", `"bi-tool.example.com" is an internal address`},
			{a, "ula.example.com", "AAAA", "NXDOMAIN", "", "is an internal address"},
			{a, "metadata.example.com", "A", "NXDOMAIN", "", "is an internal address"},
			{a, "svc.example.com", "A", "NOERROR", ipSvc, ""}, // allow_internal
			{u, "svc.example.com", "A", "NXDOMAIN", "", "is an internal address"},
			{a, "nope.example.com", "A", "NXDOMAIN", "", ""},
			{a, "www.example.com", "TXT", "REFUSED", "", "this query type is not answered"},
			{a, "tracked.example.com", "A", "NOERROR", "CNAME hop.example.net.", ""}, // the chain, then the address
			{a, "tracked.example.com", "A", "NOERROR", ipPublic, ""},
		} {
			r := tp.dig(c.w, ipForeignDNS, c.name, c.qtype, false)
			if r.status != c.status || (c.addr != "" && !r.has(c.addr)) || (c.addr == "" && len(r.answers) != 0) || !strings.Contains(r.ede, c.ede) {
				t.Errorf("%s: %s %s: %v, want %s %s (EDE %q)", c.w.label, c.name, c.qtype, r, c.status, c.addr, c.ede)
			}
			if strings.Contains(r.out, ipBITool) || strings.Contains(r.out, ip6BITool) {
				t.Errorf("%s: %s %s: the reply names an internal address:\n%s", c.w.label, c.name, c.qtype, r.out)
			}
		}
	})
	t.Run("the host's own processes", func(t *testing.T) {
		if r := tp.dig(nonTenant(), ipDNS, "bi-tool.example.com", "A", false); r.status != "NOERROR" || !r.has(ipBITool) {
			t.Errorf("a non-tenant: bi-tool A: %v, want the split-horizon answer", r)
		}
	})
	t.Run("getent", func(t *testing.T) {
		for _, w := range []who{tp.resolving(a, ipForeignDNS), tp.resolving(u, ipStubDNS), tp.resolving(a, ipDNS)} {
			r := tp.run(w, 15*time.Second, "getent", "ahosts", "www.example.com")
			if r.code != 0 || !strings.Contains(r.out, ipPublic) || !strings.Contains(r.out, ip6Public) {
				t.Errorf("%s: getent ahosts www.example.com: exit %d %q %s", w.label, r.code, r.out, r.errOut)
			}
			if r := tp.run(w, 15*time.Second, "getent", "ahosts", "bi-tool.example.com"); r.code != 2 || r.out != "" {
				t.Errorf("%s: getent ahosts bi-tool.example.com: exit %d %q, want exit 2 (not found)", w.label, r.code, r.out)
			}
		}
	})
	t.Run("go resolver", func(t *testing.T) {
		w := tp.resolving(a, ipForeignDNS)
		if res := tp.get(w, "https://www.example.com/"); res[0].Status != 200 || !strings.Contains(res[0].Body, "hello from public") {
			t.Errorf("Go: public: %+v", res[0])
		}
		if res := tp.get(w, "http://bi-tool.example.com/"); res[0].Status != 0 || !strings.Contains(res[0].Err, "no such host") {
			t.Errorf("Go: bi-tool: %+v, want no such host", res[0])
		}
	})
	t.Run("curl", func(t *testing.T) {
		for _, w := range []who{tp.resolving(a, ipForeignDNS), tp.resolving(u, ip6ForeignDNS)} {
			check(t, w.label+" http", tp.curl(w, "http://www.example.com/"), okPublic)
			check(t, w.label+" https", tp.curl(w, "https://www.example.com/"), okPublic)
			check(t, w.label+" bi-tool", tp.curl(w, "http://bi-tool.example.com/"), want{exit: 6, stderr: "could not resolve host"})
		}
	})
	t.Run("HTTPS record", func(t *testing.T) {
		up := tp.dig(nonTenant(), ipDNS, "www.example.com", "HTTPS", false)
		if !up.has("ech=") || !up.has("h3") || !up.has("ipv4hint") {
			t.Fatalf("the upstream's HTTPS record lacks ech, h3 or a hint: %v", up)
		}
		for _, server := range []string{ipDNS, ipForeignDNS} {
			for _, tcp := range []bool{false, true} {
				r := tp.dig(a, server, "www.example.com", "HTTPS", tcp)
				if r.status != "NOERROR" || len(r.answers) != 1 || !r.has(`alpn="h2"`) || r.has("ech=") || r.has("h3") || r.has("hint") {
					t.Errorf("tenant's HTTPS record from %s (tcp %v): %v, want alpn h2 only: no ech, no h3, no address hint", server, tcp, r)
				}
			}
		}
	})
	t.Run("report mode", func(t *testing.T) {
		i := d.since()
		rep := tp.inCgroup("b")
		if r := tp.dig(rep, ipForeignDNS, "bi-tool.example.com", "A", false); r.status != "NOERROR" || !r.has(ipBITool) {
			t.Errorf("report mode: bi-tool A: %v, want the internal answer", r)
		}
		if _, ok := d.dnsLog(i, "bi-tool.example.com", map[string]string{"tenant": "rep", "decision": "would_deny",
			"reason": "internal_address", "mode": "report", "type": "A", "rcode": "NOERROR"}); !ok {
			t.Errorf("no would_deny line for the report-mode tenant")
		}
	})
	t.Run("log", func(t *testing.T) {
		i := d.since()
		tp.dig(a, ipForeignDNS, "metadata.example.com", "A", true)
		l, ok := d.dnsLog(i, "metadata.example.com", map[string]string{"tenant": "a", "decision": "deny", "reason": "internal_address",
			"type": "A", "proto": "tcp", "rcode": "NXDOMAIN", "orig_dst": ipForeignDNS + ":53"})
		if !ok {
			t.Fatalf("no dns line for the refusal with the address the tenant asked")
		}
		if !strings.Contains(l.str("detail"), ipMetadata) || l.str("src") == "" {
			t.Errorf("detail %q src %q: want the internal address for the operator and the source", l.str("detail"), l.str("src"))
		}
	})
	t.Run("DNS over TLS", func(t *testing.T) {
		check(t, "853", tp.curl(a, "-m", "2", "telnet://"+ipForeignDNS+":853"), reset)
	})
	tp.internal.settle() // a late event must not pass for none
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

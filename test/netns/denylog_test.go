package netns

import (
	"strings"
	"testing"
)

// TestDenyResponsesAndLogs: a denied HTTP request gets a 403 with a
// one-line plain-text reason that names the destination but not the
// internal address it resolved to; TLS gets an access_denied alert; and
// every decision has a log line naming tenant, name, original destination,
// resolved addresses, decision and reason. A report-mode tenant is let
// through and logged as would_deny.
func TestDenyResponsesAndLogs(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	tenants := tp.tenant("a", "a", 0, `deny_domains = ["denied.example.com"]`) +
		tp.tenant("b", "", tp.uid, `mode = "report"`)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tenants}))

	t.Run("http 403", func(t *testing.T) {
		r := tp.raw(tp.inCgroup("a"), ipBITool+":80", `GET /x HTTP/1.1\r\nHost: bi-tool.example.com\r\nUser-Agent: e2e\r\n\r\n`)
		head, body, _ := strings.Cut(r.Reply, "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 403 ") || !strings.Contains(head, "Content-Type: text/plain") {
			t.Errorf("response head %q, want a 403 with Content-Type text/plain", head)
		}
		wantBody := "egressfw denied this request: \"bi-tool.example.com\" is an internal address\n"
		if body != wantBody {
			t.Errorf("body %q, want %q", body, wantBody)
		}
		if strings.Contains(r.Reply, ipBITool) || strings.Contains(r.Reply, ip6BITool) {
			t.Errorf("the reply reveals the internal address: %q", r.Reply)
		}
		l, ok := d.connLog(0, "bi-tool.example.com", ipBITool+":80")
		if !ok {
			t.Fatalf("no log line for the denial:\n%s", d.logText())
		}
		fields := map[string]string{"tenant": "a", "decision": "deny", "reason": "internal_address",
			"proto": "http", "mode": "enforce", "resolved": ipBITool + ", " + ip6BITool}
		for k, v := range fields {
			if l.str(k) != v {
				t.Errorf("log %s = %q, want %q (line %v)", k, l.str(k), v, l)
			}
		}
		if !strings.HasPrefix(l.str("src"), ipHostInt+":") || !strings.Contains(l.str("detail"), ipBITool) {
			t.Errorf("log src %q detail %q: want the tenant's source and the internal address for the operator", l.str("src"), l.str("detail"))
		}
	})
	t.Run("tls alert", func(t *testing.T) {
		i := d.since()
		check(t, "bi-tool over TLS", tp.curl(tp.inCgroup("a"), args(resolve("bi-tool.example.com", "443", ipBITool), "https://bi-tool.example.com/")...), tlsDenied)
		if l, ok := d.connLog(i, "bi-tool.example.com", ipBITool+":443"); !ok || l.str("proto") != "tls" || l.str("reason") != "internal_address" {
			t.Errorf("log line %v, want proto tls, reason internal_address", l)
		}
	})
	t.Run("deny list", func(t *testing.T) {
		i := d.since()
		check(t, "denied.example.com", tp.curl(tp.inCgroup("a"), args(resolve("denied.example.com", "80", ipPublic), "http://denied.example.com/")...),
			want{status: 403, body: `"denied.example.com" is on the deny list`})
		if l, ok := d.connLog(i, "denied.example.com", ""); !ok || l.str("reason") != "denied_domain" {
			t.Errorf("log line %v, want reason denied_domain", l)
		}
		if q := tp.dns.queries("denied.example.com."); q != 0 {
			t.Errorf("a name on the deny list was sent to DNS %d times", q)
		}
	})
	t.Run("nxdomain", func(t *testing.T) {
		i := d.since()
		check(t, "nope.example.com", tp.curl(tp.inCgroup("a"), args(resolve("nope.example.com", "80", ipPublic), "http://nope.example.com/")...),
			want{status: 403, body: `"nope.example.com" does not exist`})
		if l, ok := d.connLog(i, "nope.example.com", ""); !ok || l.str("reason") != "dns_nxdomain" {
			t.Errorf("log line %v, want reason dns_nxdomain", l)
		}
	})
	t.Run("report mode", func(t *testing.T) {
		i := d.since()
		check(t, "tenant b (report) to bi-tool", tp.curl(tp.asUID(), args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/")...),
			want{status: 200, body: "hello from bi-tool"})
		l, ok := d.connLog(i, "bi-tool.example.com", ipBITool+":80")
		if !ok || l.str("tenant") != "b" || l.str("decision") != "would_deny" || l.str("mode") != "report" || l.str("reason") != "internal_address" {
			t.Errorf("log line %v, want tenant b, decision would_deny, mode report, reason internal_address", l)
		}
	})
	if n := tp.internal.requests(""); n != 1 {
		t.Errorf("internal servers served %d requests, want only the report-mode one", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

package netns

import (
	"regexp"
	"strings"
	"testing"
	"time"
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
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tenants, denyDetail: "full"}))

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
	tp.internal.atLeast(func() int { return tp.internal.requests("") }, 1)
	if n := tp.internal.requests(""); n != 1 {
		t.Errorf("internal servers served %d requests, want only the report-mode one", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// TestDenyMinimal: with the shipped deny_detail ("minimal") real clients
// get the same answer to every refusal: curl -i prints byte-identical
// status, headers and body for an internal name, one that does not exist,
// the deny list, a name not on the allow list, the metadata address, an
// internal literal and a name resolved while the DNS server is down; openssl s_client gets
// the same access_denied alert for each over TLS, with or without SNI. A
// tenant therefore cannot map the split-horizon zone through egressfw,
// while the log keeps every reason.
func TestDenyMinimal(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	tenants := tp.tenant("a", "a", 0, `deny_domains = ["denied.example.com"]`) +
		tp.tenant("b", "", tp.uid, `allow_domains = ["www.example.com"]`)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tenants, denyDetail: "default"}))
	a, b := tp.inCgroup("a"), tp.asUID()
	type probe struct {
		name   string
		w      who
		host   string // "" for an IP-literal URL
		ip     string
		reason string
	}
	probes := []probe{
		{"internal name", a, "bi-tool.example.com", ipBITool, "internal_address"},
		{"name that does not exist", a, "nope.example.com", ipPublic, "dns_nxdomain"},
		{"deny list", a, "denied.example.com", ipPublic, "denied_domain"},
		{"metadata by name", a, "metadata.example.com", ipMetadata, "internal_address"},
		{"internal literal", a, "", ipBITool, "internal_address"},
		{"not on the allow list", b, "svc.example.com", ipSvc, "not_allowed_domain"},
		{"dns server down", a, "fresh.example.com", ipPublic, "dns_failure"}, // last: stops DNS
	}
	httpAnswers, tlsAnswers := map[string][]string{}, map[string][]string{}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if p.reason == "dns_failure" {
				tp.dns.stop()
			}
			host, curlArgs := p.host, []string{}
			if host == "" {
				host = p.ip
			} else {
				curlArgs = resolve(host, "80", p.ip)
			}
			i := d.since()
			r := tp.curl(p.w, args("-i", curlArgs, "http://"+host+"/")...)
			if r.status != 403 {
				t.Errorf("curl: %v, want a 403", r)
			}
			httpAnswers[r.body] = append(httpAnswers[r.body], p.name)
			t.Logf("http denial after %v", r.dur.Round(time.Millisecond))
			if l, ok := d.connLog(i, host, p.ip+":80"); !ok || l.str("reason") != p.reason || l.str("decision") != "deny" {
				t.Errorf("log line %v, want decision deny, reason %s", l, p.reason)
			}
			i = d.since()
			alert := tp.sslAlert(p.w, p.ip, p.host)
			tlsAnswers[alert] = append(tlsAnswers[alert], p.name)
			if l, ok := d.connLog(i, p.host, p.ip+":443"); !ok || l.str("reason") != p.reason || l.str("proto") != "tls" {
				t.Errorf("log line %v, want proto tls, reason %s", l, p.reason)
			}
		})
	}
	const wantBody = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n" +
		"Connection: close\r\nCache-Control: no-store\r\n\r\negressfw denied this request\n"
	if len(httpAnswers) != 1 || httpAnswers[wantBody] == nil {
		t.Errorf("curl -i saw %d different answers, want only %q:\n%q", len(httpAnswers), wantBody, httpAnswers)
	}
	if len(tlsAnswers) != 1 || tlsAnswers["alert access denied, SSL alert number 49"] == nil {
		t.Errorf("openssl saw %d different answers, want only access_denied (49):\n%q", len(tlsAnswers), tlsAnswers)
	}
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

var sslAlertRE = regexp.MustCompile(`alert ([a-z ]+):.*(SSL alert number [0-9]+)`)

// sslAlert runs openssl s_client as w against ip:443 with SNI host (none
// when host is "") and returns the alert it reports ("alert access denied,
// SSL alert number 49"), or what it printed when there was none.
func (tp *topo) sslAlert(w who, ip, host string) string {
	tp.t.Helper()
	sni := []string{"-noservername"}
	if host != "" {
		sni = []string{"-servername", host}
	}
	r := tp.run(w, 15*time.Second, append([]string{"openssl", "s_client", "-connect", ip + ":443", "-CAfile", tp.file("ca.pem")}, sni...)...)
	if m := sslAlertRE.FindStringSubmatch(r.errOut); m != nil {
		return "alert " + m[1] + ", " + m[2]
	}
	return "no alert: exit " + itoa(r.code) + ": " + r.errOut
}

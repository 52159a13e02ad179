package netns

import (
	"strings"
	"testing"
)

// TestAllowedInternalService: tenant "a" may reach svc.example.com on port
// 80 by name (allow_internal); it may not reach svc on 443, svc by IP, or
// the BI tool; tenant "b" (a uid) may not reach svc at all. The svc server
// counts exactly the one allowed request.
func TestAllowedInternalService(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	a := tp.tenant("a", "a", 0, `
  [[tenant.allow_internal]]
  host = "svc.example.com"
  ports = [80]`)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: a + tp.tenant("b", "", tp.uid, "")}))
	okSvc := want{status: 200, body: "hello from svc"}
	cases := []struct {
		name   string
		tenant who
		args   []string
		want   want
	}{
		{"a: svc by name on 80", tp.inCgroup("a"), args(resolve("svc.example.com", "80", ipSvc), "http://svc.example.com/"), okSvc},
		{"a: svc by name on 443", tp.inCgroup("a"), args(resolve("svc.example.com", "443", ipSvc), "https://svc.example.com/"), tlsDenied},
		{"a: svc by IP", tp.inCgroup("a"), args("http://" + ipSvc + "/"), deniedInt},
		{"a: svc on a port that is not intercepted", tp.inCgroup("a"), args(resolve("svc.example.com", "8080", ipSvc), "http://svc.example.com:8080/"), reset},
		{"a: bi-tool by name", tp.inCgroup("a"), args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/"), deniedInt},
		{"a: public", tp.inCgroup("a"), args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/"), okPublic},
		{"b: svc by name", tp.asUID(), args(resolve("svc.example.com", "80", ipSvc), "http://svc.example.com/"), deniedInt},
		{"b: svc by IP", tp.asUID(), args("http://" + ipSvc + "/"), deniedInt},
	}
	for _, c := range cases {
		check(t, c.name, tp.curl(c.tenant, c.args...), c.want)
	}
	tp.internal.atLeast(func() int { return tp.internal.requests(ipSvc) }, 1)
	if n := tp.internal.requests(ipSvc); n != 1 {
		t.Errorf("svc served %d requests, want exactly 1 (tenant a's)", n)
	}
	other := tp.internal.count(func(e srvEvent) bool {
		return e.Ev == "conn" && (e.localIP() != ipSvc || !strings.HasSuffix(e.Local, ":80"))
	})
	if other != 0 {
		t.Errorf("%d connections reached internal addresses or ports other than svc:80", other)
	}
	if l, ok := d.connLog(0, "svc.example.com", ipSvc+":80"); !ok || l.str("decision") != "allow" || l.str("tenant") != "a" || l.str("dialed") != ipSvc+":80" {
		t.Errorf("log of the allowed svc request: %v", l)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

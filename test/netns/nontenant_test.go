package netns

import (
	"testing"
	"time"
)

// TestNonTenantUntouched: processes outside every tenant cgroup and uid
// (the test's own cgroup, another uid) reach the internal services exactly
// as before egressfw started, and egressfw never sees their connections.
func TestNonTenantUntouched(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	others := []who{nonTenant(), {label: "other uid", uid: tp.uid + 100}, tp.inCgroup("b")} // b: not a tenant here
	requests := func(phase string) {
		for _, w := range others {
			check(t, phase+" "+w.label+": bi-tool by name",
				tp.curl(w, args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/")...),
				want{status: 200, body: "hello from bi-tool"})
			check(t, phase+" "+w.label+": svc over TLS",
				tp.curl(w, args(resolve("svc.example.com", "443", ipSvc), "https://svc.example.com/")...),
				want{status: 200, body: "hello from svc"})
			check(t, phase+" "+w.label+": metadata",
				tp.curl(w, "http://"+ipMetadata+"/"), want{status: 200, body: "hello from metadata"})
		}
	}
	requests("before egressfw:")
	d := tp.startEgressfw(tp.config(cfgOpts{tenants: tp.tenant("a", "a", 0, ""), noGuard: true}))
	requests("with egressfw:")
	// The tenant next to them is filtered, so the rules are really in place.
	check(t, "tenant a: bi-tool", tp.curl(tp.inCgroup("a"), "http://"+ipBITool+"/"), deniedInt)
	tp.internal.atLeast(func() int { return tp.internal.requests("") }, 2*3*len(others))
	if n, want := tp.internal.requests(""), 2*3*len(others); n != want {
		t.Errorf("internal servers served %d requests, want %d", n, want)
	}
	time.Sleep(100 * time.Millisecond)
	conns := d.linesFrom(0, func(l logLine) bool { return l.str("msg") == "connection" })
	if len(conns) != 1 || conns[0].str("tenant") != "a" {
		t.Errorf("egressfw logged %d connections, want only tenant a's one:\n%s", len(conns), d.logText())
	}
}

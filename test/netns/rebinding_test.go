package netns

import (
	"strconv"
	"strings"
	"testing"
)

// TestDNSRebinding: rebind.example.com answers alternately a public and an
// internal address with TTL 0, and egressfw caches nothing (min_ttl 0s).
// Over many requests, whatever address the tenant connects to, egressfw
// dials only the public one or denies: the internal server sees nothing.
// Tenant a resolves names itself (dns = "direct"); tenant b asks egressfw,
// which answers the name only when its lookup is public (else NXDOMAIN),
// and judges the connection by a lookup of its own.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	tenants := tp.tenant("a", "a", 0, `dns = "direct"`) + tp.tenant("b", "", tp.uid, "")
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", minTTL: "0s", tenants: tenants}))
	const n = 40
	// Through egressfw, a request takes two A queries (the tenant's, then
	// egressfw's own for the connection) while the tenant is told the
	// public answer, one when it is told NXDOMAIN: after at most one
	// refusal every tenant query lands on the public turn. One query of
	// the test's own between two halves moves the turn, so that egressfw
	// has the internal answer to refuse in one of them.
	flip := func() { tp.dig(tp.inCgroup("a"), ipDNS, "rebind.example.com", "A", false) }
	runs := []struct {
		name   string
		w      who
		args   []string
		n      int
		before func()
	}{
		{"tenant connects to the public answer", tp.inCgroup("a"), []string{"-resolve", "rebind.example.com=" + ipPublic}, n, nil},
		{"tenant connects to the internal answer", tp.inCgroup("a"), []string{"-resolve", "rebind.example.com=" + ipBITool}, n, nil},
		{"tenant resolves itself through the internal DNS", tp.inCgroup("a"), []string{"-dns", ipDNS + ":53"}, n, nil},
		{"tenant resolves through egressfw", tp.asUID(), []string{"-dns", ipDNS + ":53"}, n / 2, nil},
		{"tenant resolves through egressfw, the other turn", tp.asUID(), []string{"-dns", ipDNS + ":53"}, n / 2, flip},
	}
	var ok, denied, unresolved int
	for _, r := range runs {
		if r.before != nil {
			r.before()
		}
		res := tp.get(r.w, append(r.args, "-n", strconv.Itoa(r.n), "http://rebind.example.com/")...)
		if len(res) != r.n {
			t.Fatalf("%s: %d results, want %d", r.name, len(res), r.n)
		}
		for i, g := range res {
			switch {
			case g.Status == 200 && strings.Contains(g.Body, "hello from public"):
				ok++
			case g.Status == 403 && strings.Contains(g.Body, "is an internal address"):
				denied++
			case r.w.uid != 0 && g.Status == 0 && strings.Contains(g.Err, "no such host"):
				unresolved++ // egressfw's DNS refused the internal answer
			default:
				t.Errorf("%s: request %d: %+v, want 200 from the public site or 403", r.name, i, g)
			}
		}
	}
	if unresolved == 0 {
		t.Errorf("egressfw's DNS never refused the internal answer")
	}
	tp.settleServers() // a late event must not pass for none
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0", n)
	}
	tp.pub.atLeast(func() int { return tp.pub.requests(ipPublic) }, ok)
	if got := tp.pub.requests(ipPublic); got != ok {
		t.Errorf("public site served %d requests, clients saw %d successes", got, ok)
	}
	// The test is only meaningful if both kinds of answer reached egressfw.
	if ok == 0 || denied == 0 {
		t.Errorf("%d allowed and %d denied: the rebinding answers did not alternate", ok, denied)
	}
	internalAnswers := tp.dns.count(func(e srvEvent) bool {
		return e.Name == "rebind.example.com." && len(e.Answer) == 1 && e.Answer[0] == ipBITool
	})
	if q := tp.dns.queries("rebind.example.com."); q < 4*n || internalAnswers < n {
		t.Errorf("DNS saw %d queries (%d internal answers) for %d requests: egressfw did not re-resolve each time", q, internalAnswers, 4*n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

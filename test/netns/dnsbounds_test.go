package netns

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDNSAnswersBounded: a name resolving to 200 addresses that all refuse
// (the public namespace owns 203.0.113.0/24 by a local route and resets
// every connection to it) costs one
// tenant connection 4 SYNs (listener.max_connect_attempts), counted by an
// nft counter where they arrive; the log line stays short and counts what
// it leaves out. A name whose CNAME chain passes through a deny-listed name
// is refused before anything is dialled.
func TestDNSAnswersBounded(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	tp.ip(tp.public, "route", "add", "local", "203.0.113.0/24", "dev", "lo")
	// Counted as they arrive, then refused (the public site's wildcard
	// listeners would otherwise answer for the local route too).
	nftIn(t, tp.public, `table inet egfwcount {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip daddr 203.0.113.0/24 tcp flags & (syn | ack) == syn counter
	}
	chain in {
		type filter hook input priority 0; policy accept;
		ip daddr 203.0.113.0/24 reject with tcp reset
	}
}`)
	deny := `deny_domains = ["*.blocked.example"]`
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]",
		tenants: tp.tenant("a", "a", 0, deny) + tp.tenant("b", "", tp.uid, deny)}))
	a := tp.inCgroup("a")

	i := d.since()
	r := tp.curl(a, args(resolve("many.example.com", "80", "203.0.113.5"), "http://many.example.com/")...)
	if r.status != 502 {
		t.Errorf("many addresses, all refusing: %v; want a 502 from egressfw", r)
	}
	if n := synCount(t, tp.public); n != 4 {
		t.Errorf("one tenant connection sent %d SYNs to the name's 200 addresses, want 4", n)
	}
	l, ok := d.connLog(i, "many.example.com", "203.0.113.5:80")
	switch {
	case !ok:
		t.Errorf("no log line for many.example.com")
	case !strings.HasSuffix(l.str("resolved"), "(+24 more)") || l["resolved_dropped"] != float64(168):
		t.Errorf("log line: resolved %q, resolved_dropped %v; want 8 shown, (+24 more), 168 dropped", l.str("resolved"), l["resolved_dropped"])
	case len(l.str("detail")) > 1024:
		t.Errorf("log detail is %d bytes: %s", len(l.str("detail")), l.str("detail"))
	}

	cases := []curlCase{
		{"CNAME chain through a deny-listed name", args(resolve("tracked.example.com", "80", ipPublic), "http://tracked.example.com/"),
			want{status: 403, body: "egressfw denied"}},
		{"CNAME chain over TLS", args(resolve("tracked.example.com", "443", ipPublic), "https://tracked.example.com/"), tlsDenied},
	}
	runCases(t, tp, []who{a, tp.asUID()}, cases)
	tp.settleServers() // a late event must not pass for none
	if n := tp.pub.conns(""); n != 0 {
		t.Errorf("the public site accepted %d connections, want 0 (the chain is denied)", n)
	}
	if l, ok := d.connLog(0, "tracked.example.com", ""); !ok || l.str("reason") != "denied_domain" ||
		!strings.Contains(l.str("detail"), `"t.blocked.example"`) {
		t.Errorf("log line for the denied chain: %v", l)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// nftIn loads an nftables script into namespace ns (the test's own
// counters; egressfw itself never runs the nft CLI).
func nftIn(t *testing.T, ns, script string) {
	t.Helper()
	cmd := nsCmd(ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", ns, err, out)
	}
}

var packetsRe = regexp.MustCompile(`counter packets (\d+)`)

// synCount reads the egfwcount counter of ns after the SYNs have settled.
func synCount(t *testing.T, ns string) int {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	out, err := nsCmd(ns, "nft", "list", "table", "inet", "egfwcount").CombinedOutput()
	m := packetsRe.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("read the SYN counter: %v: %s", err, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

package netns

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/status"
)

// TestStatus: egressfw status against the running daemon. Tenant a (enforce)
// downloads from the public site (one connection held open), is allowed a
// public name and denied an internal name twice and the metadata address
// once; uid tenant b (report mode) is let through to the BI tool. The
// screen and --json show each tenant's open connection, its last minute by
// outcome and its denied names with the reason; another program's nft -f
// and a reload appear as they happen. A local user who is not root (nobody)
// cannot read it: the socket's mode refuses the connection, and a socket
// opened to everyone by mistake still answers nobody with a refusal only.
func TestStatus(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	cfg := tp.config(cfgOpts{tenants: tp.tenant("a", "a", 0, "") + tp.tenant("b", "", tp.uid, `mode = "report"`)})
	d := tp.startEgressfw(cfg)
	a, b := tp.inCgroup("a"), tp.asUID()
	finish := tp.download(a, 64<<10, 6000)
	tp.waitDrip(t)
	check(t, "a: public", tp.curl(a, args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/")...), okPublic)
	for range 2 {
		check(t, "a: bi-tool", tp.curl(a, args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/")...), deniedInt)
	}
	check(t, "a: metadata", tp.curl(a, "http://"+ipMetadata+"/"), want{status: 403, body: "internal address"})
	check(t, "b (report): bi-tool", tp.curl(b, args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/")...),
		want{status: 200, body: "hello from bi-tool"})
	waitConnLines(t, d, 0, 4)

	screen, _ := egressfwCLI(t, "status", "--config", d.cfgPath)
	t.Logf("egressfw status:\n%s", screen)
	rows := map[string]*regexp.Regexp{
		"a": regexp.MustCompile(`(?m)^a\s+enforce\s+15001\s+1\s+5\s+3\s+0\s+0$`),
		"b": regexp.MustCompile(`(?m)^b\s+report\s+15002\s+0\s+1\s+0\s+1\s+0$`),
	}
	for name, re := range rows {
		if !re.MatchString(screen) {
			t.Errorf("tenant %s's row does not match %s", name, re)
		}
	}
	for _, w := range []string{"healthy", "not reloaded since start", "applied", ", ok;", "restored 0 times",
		"bi-tool.example.com", "internal_address", ipMetadata, "report mode: let through"} {
		if !strings.Contains(screen, w) {
			t.Errorf("the screen lacks %q", w)
		}
	}
	r := statusJSON(t, d)
	ta, tb := r.Tenants[0], r.Tenants[1]
	if ta.Name != "a" || ta.Open != 1 || ta.LastMinute != (status.Counts{Connections: 5, Denied: 3}) ||
		len(ta.TopDenied) != 2 || ta.TopDenied[0].Name != "bi-tool.example.com" || ta.TopDenied[0].Count != 2 ||
		ta.TopDenied[1].Name != ipMetadata || ta.TopDenied[1].Reason != "internal_address" {
		t.Errorf("tenant a: %+v", ta)
	}
	if tb.Name != "b" || tb.Mode != "report" || tb.LastMinute != (status.Counts{Connections: 1, Reported: 1}) ||
		len(tb.TopDenied) != 1 || tb.TopDenied[0].Decision != "would_deny" {
		t.Errorf("tenant b: %+v", tb)
	}
	if r.DNSCache.Hits+r.DNSCache.Misses < 3 {
		t.Errorf("dns cache %+v: the lookups of www and bi-tool are not counted", r.DNSCache)
	}
	if res := finish(); res.Err != "" {
		t.Errorf("download: %s", res.Err)
	}

	// Another program's nft -f, and a reload.
	restoreThenReload(t, tp, d)
	r = statusJSON(t, d)
	if rs := r.Ruleset; rs.Restores != 1 || rs.LastRestore == nil || !regexp.MustCompile(`^nft\[\d+\]$`).MatchString(rs.LastRestore.By) ||
		!strings.Contains(rs.LastRestore.What, "delete table (egressfw)") || rs.Problem != "" {
		t.Errorf("ruleset after nft -f: %+v (last restore %+v)", rs, rs.LastRestore)
	}
	if r.Reload.Count != 1 || r.Reload.Last == nil || r.Reload.Last.Error != "" || r.Tenants[0].LastMinute.Denied != 3 {
		t.Errorf("after the reload: %+v, tenant a %+v", r.Reload, r.Tenants[0].LastMinute)
	}

	// Not for other local users.
	sock := tp.file("status.sock")
	nobody := who{label: "nobody", uid: 65534}
	res := tp.run(nobody, 10*time.Second, egressfwBin, "status", "--socket", sock)
	if res.code != 1 || !strings.Contains(res.errOut, "permission denied (the status socket is root's)") || strings.Contains(res.out+res.errOut, "bi-tool") {
		t.Errorf("nobody: exit %d\n%s%s\nwant exit 1, the connection refused by the socket's mode, no report", res.code, res.out, res.errOut)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	res = tp.run(nobody, 10*time.Second, egressfwBin, "status", "--socket", sock, "--json")
	if res.code != 1 || !strings.Contains(res.errOut, "permission denied: uid 65534 is not root") || strings.Contains(res.out+res.errOut, "bi-tool") {
		t.Errorf("nobody on a socket opened to everyone: exit %d\n%s%s\nwant exit 1, the refusal, no report", res.code, res.out, res.errOut)
	}
	if l, ok := d.waitLog(func(l logLine) bool { return strings.HasPrefix(l.str("msg"), "status socket: refused") }, time.Second); !ok || l["uid"] != 65534.0 {
		t.Errorf("refusal logged as %v", l)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// statusJSON is egressfw status --json, decoded.
func statusJSON(t *testing.T, d *daemon) status.Report {
	t.Helper()
	out, _ := egressfwCLI(t, "status", "--config", d.cfgPath, "--json")
	var r status.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Tenants) != 2 {
		t.Fatalf("egressfw status --json: %v\n%s", err, out)
	}
	return r
}

// restoreThenReload loads Debian's nftables.conf over egressfw's table, as
// another program would, waits for the restore, then reloads egressfw
// (SIGHUP) and waits for it.
func restoreThenReload(t *testing.T, tp *topo, d *daemon) {
	t.Helper()
	i := d.since()
	load := nsCmd(tp.host, "nft", "-f", "-")
	load.Stdin = strings.NewReader(debianNftablesConf)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	if _, ok := waitRestored(t, d, i); !ok {
		t.Fatalf("no restore logged:\n%s", d.logText())
	}
	d.signal(syscall.SIGHUP)
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "config reloaded" }, 5*time.Second); !ok {
		t.Fatalf("no reload logged:\n%s", d.logText())
	}
}

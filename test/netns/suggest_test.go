package netns

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSuggest: tenant "a" runs in report mode and reaches a few public
// names (an apex, three subdomains of it over HTTP and HTTPS, a name of
// another domain), the internal svc and a public IP literal. egressfw
// suggest --from the log turns that into allow_domains and an
// allow_internal candidate; applied with the tenant switched to enforce
// (check-config, then SIGHUP), the same requests pass, and a new name, an
// internal name the wildcard covers and the literal are refused.
func TestSuggest(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.tenant("a", "a", 0, `mode = "report"`)}))
	a := tp.inCgroup("a")
	okSvc := want{status: 200, body: "hello from svc"}
	traffic := []curlCase{
		{"www over https", args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/"), okPublic},
		{"api over http", args(resolve("api.example.com", "80", ipPublic), "http://api.example.com/"), okPublic},
		{"cdn over https", args(resolve("cdn.example.com", "443", ipPublic), "https://cdn.example.com/"), okPublic},
		{"the apex", args(resolve("example.com", "80", ipPublic), "http://example.com/"), okPublic},
		{"another domain", args(resolve("solo.example.org", "80", ipPublic), "http://solo.example.org/"), okPublic},
		{"internal svc", args(resolve("svc.example.com", "80", ipSvc), "http://svc.example.com/"), okSvc},
	}
	literal := args("http://" + ipPublic + "/")
	for _, c := range traffic {
		check(t, "report mode: "+c.name, tp.curl(a, c.args...), c.want)
	}
	check(t, "report mode: public literal", tp.curl(a, literal...), okPublic)
	waitConnLines(t, d, 0, len(traffic)+1)

	logPath := tp.file("egressfw.log")
	if err := os.WriteFile(logPath, []byte(d.logText()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut := egressfwCLI(t, "suggest", "--from", logPath, "--config", d.cfgPath, "--tenant", "a")
	t.Logf("egressfw suggest:\n%s%s", out, errOut)
	for _, w := range []string{`"example.com",`, `"*.example.com",`, "3 names (api, cdn, www)", `"solo.example.org",`,
		"REVIEW", `host = "svc.example.com"`, "ports = [80]", ipPublic + ":80: allowed", `other messages`} {
		if !strings.Contains(out+errOut, w) {
			t.Errorf("suggest output lacks %q", w)
		}
	}
	if strings.Contains(out, `"www.example.com"`) {
		t.Errorf("www.example.com listed on its own: the wildcard covers it")
	}
	diff, _ := egressfwCLI(t, "suggest", "--diff", "--from", logPath, "--config", d.cfgPath, "--tenant", "a")
	for _, w := range []string{`-"*"`, `+"*.example.com"`, `+host = "svc.example.com", ports = [80]`} {
		if !strings.Contains(diff, w) {
			t.Errorf("suggest --diff lacks %q:\n%s", w, diff)
		}
	}

	enforced := tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.tenant("a", "a", 0, "mode = \"enforce\"\n"+out)})
	if out, errOut := egressfwCLI(t, "check-config", "--config", tp.writeConfig("suggested.toml", enforced)); !strings.Contains(out, "valid") {
		t.Fatalf("check-config of the applied suggestion: %s%s", out, errOut)
	}
	i := d.since()
	tp.writeConfig("egressfw.toml", enforced)
	d.signal(syscall.SIGHUP)
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "config reloaded" }, 5*time.Second); !ok {
		t.Fatalf("no reload logged:\n%s", d.logText())
	}
	i = d.since()
	for _, c := range traffic {
		check(t, "enforce: "+c.name, tp.curl(a, c.args...), c.want)
	}
	for _, l := range waitConnLines(t, d, i, len(traffic)) {
		if l.str("decision") != "allow" || l.str("mode") != "enforce" {
			t.Errorf("enforce mode logged %v, want decision allow, mode enforce", l)
		}
	}
	check(t, "enforce: a new name", tp.curl(a, args(resolve("new.example.net", "80", ipPublic), "http://new.example.net/")...),
		want{status: 403, body: `"new.example.net" is not on the allow list`})
	check(t, "enforce: an internal name under the wildcard", tp.curl(a, args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/")...), deniedInt)
	check(t, "enforce: the public literal", tp.curl(a, literal...), want{status: 403, body: "IP-address destinations are not allowed"})
	tp.internal.settle() // a late event must not pass for none
	if n := tp.internal.requests(ipBITool); n != 0 {
		t.Errorf("the BI tool served %d requests", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// waitConnLines waits until egressfw logged n connection lines from index
// i (lines are written when a connection ends) and returns them.
func waitConnLines(t *testing.T, d *daemon, i, n int) []logLine {
	t.Helper()
	ls := d.waitCount(i, func(l logLine) bool { return l.str("msg") == "connection" }, n, 5*time.Second)
	if len(ls) < n {
		t.Fatalf("%d connection lines logged, want %d:\n%s", len(ls), n, d.logText())
	}
	return ls
}

// egressfwCLI runs the egressfw binary (no namespace needed: it reads
// files) and returns its standard output and error.
func egressfwCLI(t *testing.T, argv ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(egressfwBin, argv...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Errorf("egressfw %s: %v\n%s", strings.Join(argv, " "), err, errOut.String())
	}
	return out.String(), errOut.String()
}

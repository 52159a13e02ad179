package netns

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// TestFaults runs the failure scenarios in order on one topology: a killed
// egressfw fails closed, a restart restores service, a re-created tenant
// cgroup is filtered again, 300 silent connections do not delay a request,
// and a dead DNS server gives a clear denial instead of a hang.
func TestFaults(t *testing.T) {
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", peekTimeout: "10s"}))
	a := tp.inCgroup("a")
	public := args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/")

	t.Run("sigkill fails closed", func(t *testing.T) {
		check(t, "before the kill", tp.curl(a, public...), okPublic)
		tp.settleServers()
		pub0, int0 := tp.pub.conns(""), tp.internal.conns("")
		d.signal(syscall.SIGKILL)
		if _, ok := d.wait(5 * time.Second); !ok {
			t.Fatal("egressfw did not die")
		}
		reqs := []curlCase{
			{"public https", public, want{}},
			{"public http", args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/"), want{}},
			{"bi-tool by IP", args("http://" + ipBITool + "/"), want{}},
		}
		for _, w := range []who{a, tp.asUID()} {
			for _, c := range reqs {
				r := tp.curl(w, append([]string{"-m", "3"}, c.args...)...)
				if r.exit == 0 || r.status != 0 {
					t.Errorf("%s %s with egressfw dead: %v; want no connection", w.label, c.name, r)
				}
				if r.dur > time.Second {
					t.Errorf("%s %s with egressfw dead took %v (%v); want a reset within 1s, not a timeout", w.label, c.name, r.dur.Round(time.Millisecond), r)
				}
			}
		}
		tp.settleServers() // a late event must not pass for none
		if p, i := tp.pub.conns(""), tp.internal.conns(""); p != pub0 || i != int0 {
			t.Errorf("servers accepted connections with egressfw dead: public %d->%d internal %d->%d", pub0, p, int0, i)
		}
	})
	t.Run("cgroup recreated while egressfw is down stays blocked", func(t *testing.T) {
		// systemd re-creates a service's cgroup on every restart; the rules
		// left in the kernel must not let the new cgroup out.
		if d.running() {
			t.Skip("needs the killed egressfw of the previous subtest")
		}
		int0 := tp.internal.conns("")
		dir := filepath.Join(tp.cgRoot, tp.slice, "a")
		if err := netnstest.RemoveCgroupTree(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		r := tp.curl(a, "-m", "3", "http://"+ipBITool+"/")
		if r.exit == 0 || tp.internal.conns("") != int0 {
			t.Errorf("bi-tool from the re-created cgroup with egressfw dead: %v, internal connections %d->%d; want no connection (fail closed)",
				r, int0, tp.internal.conns(""))
		}
	})
	t.Run("restart restores service", func(t *testing.T) {
		d.start()
		check(t, "public after restart", tp.curl(a, public...), okPublic)
		check(t, "bi-tool after restart", tp.curl(a, "http://"+ipBITool+"/"), deniedInt)
	})
	t.Run("recreated cgroup is filtered", func(t *testing.T) {
		dir := filepath.Join(tp.cgRoot, tp.slice, "a")
		i := d.since()
		if err := netnstest.RemoveCgroupTree(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		added := func(l logLine) bool {
			return l.str("msg") == "tenant cgroup added" && l.str("cgroup") == tp.slice+"/a"
		}
		if _, ok := d.waitLogFrom(i, added, 5*time.Second); !ok {
			t.Fatalf("egressfw did not log the re-created cgroup:\n%s", d.logText())
		}
		check(t, "bi-tool from the new cgroup", tp.curl(a, "http://"+ipBITool+"/"), deniedInt)
		check(t, "public from the new cgroup", tp.curl(a, public...), okPublic)
	})
	t.Run("idle connections do not delay a request", func(t *testing.T) {
		idle := tp.startIdle(a, ipPublic+":443", 300)
		defer idle.close()
		for k := 0; k < 3; k++ {
			r := tp.curl(a, public...)
			check(t, "request next to 300 idle connections", r, okPublic)
			if r.dur > time.Second {
				t.Errorf("request took %v next to 300 idle connections; want well under 1s", r.dur.Round(time.Millisecond))
			}
		}
		if open := idle.close(); open != 300 {
			t.Errorf("%d of the 300 idle connections were still open; want all (peek_timeout is 10s)", open)
		}
	})
	t.Run("dns down gives a clear denial", func(t *testing.T) {
		tp.dns.stop()
		i := d.since()
		r := tp.curl(a, args(resolve("fresh.example.com", "80", ipPublic), "http://fresh.example.com/")...)
		check(t, "a name never resolved before", r, want{status: 403, body: `"fresh.example.com" could not be resolved`})
		if r.dur > 3*time.Second {
			t.Errorf("the denial took %v; want about dns.timeout (1s)", r.dur.Round(time.Millisecond))
		}
		l, ok := d.connLog(i, "fresh.example.com", "")
		if !ok || !strings.HasPrefix(l.str("reason"), "dns_") {
			t.Errorf("log line %v, want a dns_* reason", l)
		}
	})
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// idleClients is a running testsrv idle.
type idleClients struct {
	stdin io.WriteCloser
	out   *bufio.Scanner
	wait  func() error
	done  func()
	open  int
}

// startIdle opens n connections to addr as w that never send a byte.
func (tp *topo) startIdle(w who, addr string, n int) *idleClients {
	tp.t.Helper()
	cmd, closeFD := tp.command(w, testsrvBin, "idle", "-addr", addr, "-n", itoa(n))
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	ic := &idleClients{stdin: in, out: bufio.NewScanner(out), wait: cmd.Wait, done: closeFD, open: -1}
	var first struct {
		Opened int    `json:"opened"`
		Err    string `json:"err"`
	}
	if !ic.out.Scan() || json.Unmarshal(ic.out.Bytes(), &first) != nil || first.Opened != n {
		ic.close()
		tp.t.Fatalf("idle clients: opened %d of %d: %s", first.Opened, n, first.Err)
	}
	return ic
}

// close ends the idle clients and returns how many connections were still
// open at that moment.
func (ic *idleClients) close() int {
	if ic.stdin == nil {
		return ic.open
	}
	ic.stdin.Close()
	ic.stdin = nil
	var last struct {
		StillOpen int `json:"still_open"`
	}
	if ic.out.Scan() && json.Unmarshal(ic.out.Bytes(), &last) == nil {
		ic.open = last.StillOpen
	}
	ic.wait()
	ic.done()
	return ic.open
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

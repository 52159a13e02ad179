package netns

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cfgOpts varies the per-test config; zero values take the defaults below.
type cfgOpts struct {
	interceptPorts string // TOML array, default [80, 443, 8080]
	peekTimeout    string
	shutdownGrace  string
	minTTL         string
	tenants        string // [[tenant]] tables; default tp.defaultTenants()
	// denyDetail is listener.deny_detail: "" is "full", since most tests
	// read the reason a client was given; "default" leaves the key out.
	denyDetail string
	// noGuard leaves the test slice unguarded, for a test that keeps a
	// non-tenant cgroup inside it; by default the slice is a guard cgroup,
	// as egressfw.slice is in the shipped config.
	noGuard bool
	// firewall: more lines of the [firewall] section.
	firewall string
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// config renders an egressfw config for the topology: the internal DNS as
// the resolver, the documentation ranges as public.
func (tp *topo) config(o cfgOpts) string {
	return fmt.Sprintf(`[listener]
port = 15001
intercept_ports = %s
peek_timeout = %q
connect_timeout = "2s"
shutdown_grace = %q
%s

[dns]
servers = ["%s:53"]
timeout = "1s"
min_ttl = %q
negative_ttl = "0s"

[metrics]
listen = "127.0.0.1:9464"
status_socket = %q

[policy]
public_cidrs = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]

[log]
level = "info"
denial_burst = 1000

[firewall]
guard_cgroups = %s
%s

%s`, or(o.interceptPorts, "[80, 443, 8080]"), or(o.peekTimeout, "3s"), or(o.shutdownGrace, "5s"),
		denyDetailLine(o.denyDetail), ipDNS, or(o.minTTL, "1s"), tp.file("status.sock"), tp.guards(o), o.firewall, or(o.tenants, tp.defaultTenants()))
}

func denyDetailLine(v string) string {
	if v == "default" {
		return ""
	}
	return fmt.Sprintf("deny_detail = %q", or(v, "full"))
}

func (tp *topo) guards(o cfgOpts) string {
	if o.noGuard {
		return "[]"
	}
	return fmt.Sprintf("[%q]", tp.slice)
}

// tenant renders one [[tenant]] table: a cgroup leaf of the slice and/or a
// uid, DNS to the internal resolver allowed direct, plus extra lines.
func (tp *topo) tenant(name, leaf string, uid int, extra string) string {
	var sel []string
	if leaf != "" {
		sel = append(sel, fmt.Sprintf("cgroups = [%q]", tp.slice+"/"+leaf))
	}
	if uid != 0 {
		sel = append(sel, fmt.Sprintf("uids = [%d]", uid))
	}
	return fmt.Sprintf(`[[tenant]]
name = %q
%s
%s
  [[tenant.allow_direct]]
  cidr = "%s/32"
  ports = [53]

`, name, strings.Join(sel, "\n"), extra, ipDNS)
}

// defaultTenants: "a" is cgroup leaf a, "b" is the uid tenant; both may
// reach any public destination.
func (tp *topo) defaultTenants() string {
	return tp.tenant("a", "a", 0, "") + tp.tenant("b", "", tp.uid, "")
}

// logLine is one JSON line egressfw wrote.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// daemon is a running `egressfw run --config` in the host namespace.
type daemon struct {
	t       testing.TB
	tp      *topo
	cfgPath string
	env     []string // added to the environment, e.g. NOTIFY_SOCKET
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	mu      sync.Mutex
	lines   []logLine
	done    chan struct{}
	exit    int
}

// writeConfig writes cfg as the daemon's config file (used by reloads too).
func (tp *topo) writeConfig(name, cfg string) string {
	p := tp.file(name)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		tp.t.Fatal(err)
	}
	return p
}

// startEgressfw writes cfg and runs egressfw with it until it logs that it
// started. It is stopped (SIGTERM, then SIGKILL) at cleanup.
func (tp *topo) startEgressfw(cfg string) *daemon {
	tp.t.Helper()
	d := &daemon{t: tp.t, tp: tp, cfgPath: tp.writeConfig("egressfw.toml", cfg)}
	d.start()
	tp.t.Cleanup(d.stop)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	i := d.launch()
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "egressfw started" }, 10*time.Second); !ok {
		d.t.Fatalf("egressfw did not start: stderr %s\nlog:\n%s", d.stderr.String(), d.logText())
	}
}

// launch runs egressfw and returns the log index its lines start at.
func (d *daemon) launch() int {
	d.t.Helper()
	d.cmd = nsCmd(d.tp.host, egressfwBin, "run", "--config", d.cfgPath)
	if len(d.env) > 0 {
		d.cmd.Env = append(os.Environ(), d.env...)
	}
	d.stderr.Reset()
	d.cmd.Stderr = &d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start egressfw: %v", err)
	}
	d.done = make(chan struct{})
	i := d.since()
	go d.read(out, d.done)
	return i
}

func (d *daemon) read(out interface{ Read([]byte) (int, error) }, done chan struct{}) {
	defer close(done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			l = logLine{"msg": "unparsed", "text": sc.Text()}
		}
		d.mu.Lock()
		d.lines = append(d.lines, l)
		d.mu.Unlock()
	}
	err := d.cmd.Wait()
	d.exit = 0
	if ee, ok := err.(*exec.ExitError); ok {
		d.exit = ee.ExitCode()
	}
}

// running reports whether the process has not exited.
func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// signal sends sig to egressfw.
func (d *daemon) signal(sig syscall.Signal) {
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal egressfw: %v", err)
	}
}

// wait waits up to timeout for egressfw to exit and returns its exit code.
func (d *daemon) wait(timeout time.Duration) (int, bool) {
	select {
	case <-d.done:
		return d.exit, true
	case <-time.After(timeout):
		return 0, false
	}
}

// stop ends egressfw: SIGTERM, then SIGKILL after 5s.
func (d *daemon) stop() {
	if !d.running() {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := d.wait(5 * time.Second); !ok {
		d.cmd.Process.Kill()
		<-d.done
	}
}

// since marks a point in the log: lines after it are what follows.
func (d *daemon) since() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.lines)
}

// linesFrom returns the log lines from index i that match f.
func (d *daemon) linesFrom(i int, f func(logLine) bool) []logLine {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []logLine
	for _, l := range d.lines[min(i, len(d.lines)):] {
		if f(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits for a log line matching f (from the start of this run).
func (d *daemon) waitLog(f func(logLine) bool, timeout time.Duration) (logLine, bool) {
	return d.waitLogFrom(0, f, timeout)
}

// waitLogFrom waits for a log line matching f from index i.
func (d *daemon) waitLogFrom(i int, f func(logLine) bool, timeout time.Duration) (logLine, bool) {
	if ls := d.waitCount(i, f, 1, timeout); len(ls) > 0 {
		return ls[0], true
	}
	return nil, false
}

// waitCount waits until at least n log lines from index i match f (a
// connection's line is written when it ends, which can be after its client
// is done) and returns the matching lines, fewer than n if the timeout
// passed first.
func (d *daemon) waitCount(i int, f func(logLine) bool, n int, timeout time.Duration) []logLine {
	deadline := time.Now().Add(timeout)
	for {
		ls := d.linesFrom(i, f)
		if len(ls) >= n || time.Now().After(deadline) {
			return ls
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connLog waits for the connection line from index i whose name and
// original destination match (either may be "" for any).
func (d *daemon) connLog(i int, name, origDst string) (logLine, bool) {
	return d.waitLogFrom(i, func(l logLine) bool {
		return l.str("msg") == "connection" && (name == "" || l.str("name") == name) &&
			(origDst == "" || l.str("orig_dst") == origDst)
	}, 3*time.Second)
}

// logText is the log so far, for failure messages.
func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for _, l := range d.lines {
		j, _ := json.Marshal(l)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

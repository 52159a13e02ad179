package netns

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBootGuard: `egressfw guard`, run before egressfw as the boot unit
// does, creates a guard cgroup that does not exist yet and installs the
// rules a stopped egressfw leaves. A process later put below the guard,
// the uid tenant and a cgroup tenant have no egress, a non-tenant is
// untouched; a second guard run leaves the table alone; egressfw then
// starts over the guard's table and serves the tenants.
func TestBootGuard(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	guard := tp.slice + "/guarded"
	cfg := strings.Replace(tp.config(cfgOpts{tenants: tp.tenant("a", "guarded/a", 0, "") + tp.tenant("b", "", tp.uid, "")}),
		"guard_cgroups = [\""+tp.slice+"\"]", "guard_cgroups = [\""+guard+"\"]", 1)
	path := tp.writeConfig("egressfw.toml", cfg)
	runGuard := func() string {
		t.Helper()
		out, err := nsCmd(tp.host, egressfwBin, "guard", "--config", path).CombinedOutput()
		if err != nil {
			t.Fatalf("egressfw guard: %v\n%s", err, out)
		}
		return string(out)
	}

	if out := runGuard(); !strings.Contains(out, "installed table inet egressfw") {
		t.Fatalf("first guard run: %s", out)
	}
	dir := filepath.Join(tp.cgRoot, guard)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the guard cgroup was not created: %v", err)
	}
	for _, leaf := range []string{"a", "stranger"} { // created after the guard, as systemd would
		if err := os.Mkdir(filepath.Join(dir, leaf), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stranger := who{label: "below the guard", cgroup: filepath.Join(dir, "stranger")}
	tenantA := who{label: "tenant a", cgroup: filepath.Join(dir, "a")}
	for _, w := range []who{tenantA, tp.asUID(), stranger} {
		check(t, "guarded: "+w.label+" to the public site", tp.curl(w, "http://"+ipPublic+"/"), reset)
		check(t, "guarded: "+w.label+" to the BI tool", tp.curl(w, "http://"+ipBITool+"/"), reset)
	}
	check(t, "guarded: non-tenant to the BI tool", tp.curl(nonTenant(), "http://"+ipBITool+"/"), want{status: 200, body: "hello from bi-tool"})

	if out := runGuard(); !strings.Contains(out, "installed already; left as it is") {
		t.Fatalf("second guard run: %s", out)
	}

	d := &daemon{t: t, tp: tp, cfgPath: path}
	d.start()
	t.Cleanup(d.stop)
	check(t, "egressfw running: tenant a to the public site", tp.curl(tenantA, "http://"+ipPublic+"/"), okPublic)
	check(t, "egressfw running: uid tenant to the public site", tp.curl(tp.asUID(), "http://"+ipPublic+"/"), okPublic)
	check(t, "egressfw running: uid tenant to the BI tool", tp.curl(tp.asUID(), "http://"+ipBITool+"/"), deniedInt)
	check(t, "egressfw running: below the guard", tp.curl(stranger, "http://"+ipPublic+"/"), reset)
	tp.internal.atLeast(func() int { return tp.internal.requests(ipBITool) }, 1)
	if n := tp.internal.requests(ipBITool); n != 1 {
		t.Errorf("the BI tool served %d requests, want only the non-tenant's", n)
	}
}

// TestGuardWatch: `egressfw guard --watch`, as egressfw-guard-watch.service
// runs it, leaves a running egressfw to restore its own table after `nft
// flush ruleset`. Once egressfw is stopped (systemctl stop keeps the rules;
// a failed start leaves the boot guard's), a flush would leave the tenants
// unfiltered until egressfw starts again: the guard watch puts the table
// back within a second, with every tenant on the slot egressfw gave it, and
// the tenants stay without egress (without the watch, the internal server
// answered them). egressfw then starts over the guard's table and serves.
func TestGuardWatch(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{tenants: tp.tenant("a", "a", 0, "") + tp.tenant("b", "", tp.uid, "")}))
	g := startGuardWatch(t, tp, d.cfgPath)
	a := tp.inCgroup("a")
	slots := tenantSlots(t, tp)

	i := d.since()
	tp.nft("flush", "ruleset")
	if _, ok := waitRestored(t, d, i); !ok {
		t.Fatalf("egressfw did not restore its table after a flush:\n%s", d.logText())
	}
	time.Sleep(guardDelay + 200*time.Millisecond)
	if g.has(guardInstalled) {
		t.Errorf("the guard watch installed its table while egressfw ran:\n%s", g.text())
	}
	check(t, "egressfw running, after a flush", tp.curl(a, "http://"+ipBITool+"/"), deniedInt)

	d.stop() // the rules stay
	int0 := tp.internal.conns("")
	for round := 1; round <= 2; round++ {
		tp.nft("flush", "ruleset")
		back := waitTable(t, tp, 2*time.Second)
		t.Logf("egressfw stopped, flush %d: the guard's table is back after %v", round, back.Round(time.Millisecond))
		if got := tenantSlots(t, tp); !maps.Equal(got, slots) {
			t.Errorf("flush %d: the guard's slots %v, egressfw's were %v", round, got, slots)
		}
		for _, w := range []who{a, tp.asUID()} {
			check(t, fmt.Sprintf("egressfw stopped, flush %d: %s to the BI tool", round, w.label), tp.curl(w, "http://"+ipBITool+"/"), reset)
		}
	}
	if n := tp.internal.conns("") - int0; n != 0 {
		t.Errorf("the internal servers accepted %d connections while egressfw was stopped", n)
	}
	if !g.has(guardInstalled) {
		t.Errorf("no %q line:\n%s", guardInstalled, g.text())
	}

	d.start() // over the guard's table
	check(t, "egressfw started again: tenant a to the public site", tp.curl(a, "http://"+ipPublic+"/"), okPublic)
	check(t, "egressfw started again: uid tenant to the BI tool", tp.curl(tp.asUID(), "http://"+ipBITool+"/"), deniedInt)
	if got := tenantSlots(t, tp); !maps.Equal(got, slots) {
		t.Errorf("egressfw started over the guard's table: slots %v, want %v", got, slots)
	}
}

const (
	guardInstalled = "installed the guard's"
	guardDelay     = 300 * time.Millisecond // daemon.guardRestoreDelay
)

// waitTable waits until egressfw's table exists in the host namespace and
// returns how long that took.
func waitTable(t *testing.T, tp *topo, limit time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		if nsCmd(tp.host, "nft", "list", "table", "inet", "egressfw").Run() == nil {
			return time.Since(t0)
		}
		if time.Since(t0) > limit {
			t.Fatalf("egressfw's table is not back %v after the flush", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// guardWatcher is a running `egressfw guard --watch`: what it wrote.
type guardWatcher struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (g *guardWatcher) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.Write(b)
}

func (g *guardWatcher) text() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.String()
}

func (g *guardWatcher) has(s string) bool { return strings.Contains(g.text(), s) }

// startGuardWatch runs `egressfw guard --watch` on the config at path in
// the host namespace until the test ends.
func startGuardWatch(t *testing.T, tp *topo, path string) *guardWatcher {
	t.Helper()
	g := &guardWatcher{}
	cmd := nsCmd(tp.host, egressfwBin, "guard", "--watch", "--config", path)
	cmd.Stdout, cmd.Stderr = g, g
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("guard watch output:\n%s", g.text())
		}
	})
	for deadline := time.Now().Add(5 * time.Second); !g.has("guard watch started"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the guard watch did not start:\n%s", g.text())
		}
	}
	return g
}

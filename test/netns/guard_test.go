package netns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if n := tp.internal.requests(ipBITool); n != 1 {
		t.Errorf("the BI tool served %d requests, want only the non-tenant's", n)
	}
}

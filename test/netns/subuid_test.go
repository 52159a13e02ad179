package netns

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSubUIDs: a process in a user namespace mapped onto a uid tenant's
// sub-uids owns its sockets as a sub-uid (as under `unshare --map-auto` or
// rootless podman). It reached the BI tool as no tenant; it is the uid
// tenant's now, and a change to the sub-uid file (replaced by rename, as
// shadow-utils does) is followed without a reload. A change that would give
// a uid two tenants is logged and the ranges in force are kept.
func TestSubUIDs(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	sub, pw := tp.file("subuid"), tp.file("passwd")
	otherUID := tp.uid + 100 // tenant "c", whose uid a bad change would claim
	writeFile(t, pw, fmt.Sprintf("tenant-b:x:%d:%d::/:/bin/false\ntenant-c:x:%d:%d::/:/bin/false\n", tp.uid, tp.uid, otherUID, otherUID))
	// By uid number, as `usermod --add-subuids` cannot write but an admin may.
	replaceFile(t, sub, fmt.Sprintf("%d:300000:65536\n", tp.uid))

	// inNS is a client in a user namespace mapped onto outer..., as uid
	// 1000 there: its sockets are owned by outer+1000.
	inNS := func(outer int) who {
		return who{label: fmt.Sprintf("userns uid %d", outer+1000),
			wrap: []string{testsrvBin, "userns", "-outer", fmt.Sprint(outer), "-uid", "1000", "--"}}
	}
	biTool := func(w who) curlRes { return tp.curl(w, "http://"+ipBITool+"/") }
	served := want{status: 200, body: "hello from bi-tool"}

	check(t, "before egressfw: sub-uid 301000", biTool(inNS(300000)), served)
	check(t, "before egressfw: sub-uid 401000", biTool(inNS(400000)), served)
	// Both were served: take the baseline once both are counted (the
	// server's events come over a pipe, after the reply the client read).
	tp.internal.atLeast(func() int { return tp.internal.requests("") }, 2)
	internalBefore := tp.internal.requests("")

	d := tp.startEgressfw(tp.config(cfgOpts{
		tenants:  tp.tenant("b", "", tp.uid, "") + tp.tenant("c", "", otherUID, ""),
		firewall: fmt.Sprintf("subuid_file = %q\npasswd_file = %q", sub, pw)}))
	check(t, "sub-uid 301000 of tenant b", biTool(inNS(300000)), deniedInt)
	check(t, "sub-uid 301000 of tenant b, public site", tp.curl(inNS(300000), "http://"+ipPublic+"/"), okPublic)
	check(t, "uid 401000, nobody's sub-uid yet", biTool(inNS(400000)), served)
	if l, ok := d.connLog(0, "", ipBITool+":80"); !ok || l.str("tenant") != "b" {
		t.Errorf("the sub-uid's connection was not logged as tenant b's: %v\n%s", l, d.logText())
	}

	// useradd/usermod replace the file by rename; by user name this time.
	i := d.since()
	replaceFile(t, sub, "tenant-b:400000:65536\n")
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "sub-uids changed; uid ranges applied" }, 5*time.Second); !ok {
		t.Fatalf("the sub-uid change was not applied:\n%s", d.logText())
	}
	check(t, "after the change: sub-uid 401000 of tenant b", biTool(inNS(400000)), deniedInt)
	check(t, "after the change: 301000 is nobody's any more", biTool(inNS(300000)), served)

	// A change giving tenant b's sub-uids over tenant c's uid is refused.
	i = d.since()
	replaceFile(t, sub, fmt.Sprintf("tenant-b:400000:65536\ntenant-b:%d:10\n", otherUID-5))
	if _, ok := d.waitLogFrom(i, func(l logLine) bool {
		return l.str("msg") == "sub-uid change not applied; keeping the uid ranges in force" && strings.Contains(l.str("err"), "uids claimed twice")
	}, 5*time.Second); !ok {
		t.Fatalf("the overlapping change was not refused in the log:\n%s", d.logText())
	}
	check(t, "after a refused change: sub-uid 401000 still tenant b's", biTool(inNS(400000)), deniedInt)

	tp.internal.atLeast(func() int { return tp.internal.requests("") }, internalBefore+2)
	if n, want := tp.internal.requests(""), internalBefore+2; n != want {
		t.Errorf("internal servers served %d requests, want %d (only the two non-tenant ones)", n, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes path the way shadow-utils does: a new file renamed
// over the old one.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	writeFile(t, path+"+", content)
	if err := os.Rename(path+"+", path); err != nil {
		t.Fatal(err)
	}
}

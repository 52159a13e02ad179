package netnstest

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// childEnv names the top-level test a re-executed test binary must run
// inside the namespace its parent prepared; parentEnv carries the parent's
// namespace, which the child must not be in.
const (
	childEnv  = "EGRESSFW_NETNSTEST_CHILD"
	parentEnv = "EGRESSFW_NETNSTEST_PARENT_NETNS"
)

// InNetns runs the calling top-level test in a fresh network namespace
// named UniqueName(prefix).
//
// In the parent it creates the namespace, calls setup with it (may be
// nil), re-executes the test binary under nsenter with only this test
// selected, reports the child's output and returns false: the caller must
// return. In the child it returns true and the test body runs with every
// thread of the process inside the namespace, so goroutines that open
// sockets cannot escape to the host's. A child that finds itself in the
// parent's namespace fails before the test body runs.
func InNetns(t *testing.T, prefix string, setup func(t *testing.T, ns *NS)) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		assertNotParentNetns(t)
		return true
	}
	ns := New(t, UniqueName(prefix))
	if setup != nil {
		setup(t, ns)
	}
	args := []string{"--net=" + ns.Path(), os.Args[0],
		"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), parentEnv+"="+self)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("test in netns %s failed: %v\n%s", ns.Name, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("test in netns %s did not pass:\n%s", ns.Name, out)
	}
	t.Logf("ran in netns %s:\n%s", ns.Name, out)
	return false
}

// InChild reports whether this process is a child InNetns started.
func InChild() bool { return os.Getenv(childEnv) != "" }

// assertNotParentNetns stops a child that somehow runs in its parent's
// (the host's) namespace before it programs or dials anything.
func assertNotParentNetns(t *testing.T) {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	parent := os.Getenv(parentEnv)
	if err != nil || parent == "" || self == parent {
		t.Fatalf("refusing to run: not in a private network namespace (self %q %v, parent %q)", self, err, parent)
	}
}

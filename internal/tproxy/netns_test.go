package tproxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// childEnv names the top-level test a re-executed test binary must run inside
// the network namespace its parent prepared.
const childEnv = "EGRESSFW_TPROXY_NETNS_CHILD"

// parentNetnsEnv carries the parent's namespace identity to the child.
const parentNetnsEnv = "EGRESSFW_TPROXY_PARENT_NETNS"

var netnsSeq atomic.Int32

// inNetns runs the calling top-level test in a fresh network namespace.
//
// In the parent it creates the namespace, brings lo up, calls setup with the
// namespace name, re-executes the test binary under nsenter with only this
// test selected, reports the child's output and returns false: the caller
// must return. In the child it returns true and the test body runs with every
// thread of the process inside the namespace, so goroutines that open sockets
// (DialAny) cannot escape to the host namespace.
func inNetns(t *testing.T, setup func(t *testing.T, ns string)) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		assertNotParentNetns(t)
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	ns := fmt.Sprintf("egfw-tpx-%d-%d", os.Getpid(), netnsSeq.Add(1))
	run(t, nil, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", ns, err, out)
		}
	})
	nsRun(t, ns, nil, "ip", "link", "set", "lo", "up")
	if setup != nil {
		setup(t, ns)
	}
	args := []string{"--net=/run/netns/" + ns, os.Args[0],
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
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), parentNetnsEnv+"="+self)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("test in netns %s failed: %v\n%s", ns, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("test in netns %s did not pass:\n%s", ns, out)
	}
	t.Logf("ran in netns %s:\n%s", ns, out)
	return false
}

// assertNotParentNetns stops a child that somehow runs in its parent's
// (the host's) namespace before it programs or dials anything.
func assertNotParentNetns(t *testing.T) {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	parent := os.Getenv(parentNetnsEnv)
	if err != nil || parent == "" || self == parent {
		t.Fatalf("refusing to run: not in a private network namespace (self %q %v, parent %q)", self, err, parent)
	}
}

// nsRun runs a command inside namespace ns, feeding it stdin if not nil.
func nsRun(t *testing.T, ns string, stdin *string, name string, args ...string) {
	t.Helper()
	run(t, stdin, "nsenter", append([]string{"--net=/run/netns/" + ns, name}, args...)...)
}

func run(t *testing.T, stdin *string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(*stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// nft loads an nftables script into namespace ns.
func nft(t *testing.T, ns, script string) {
	t.Helper()
	nsRun(t, ns, &script, "nft", "-f", "-")
}

// addDummy gives ns a NOARP interface holding the test's "public" source
// addresses; packets routed into it vanish, which makes any other address in
// its prefixes a black hole. It is an ifb device (which drops what it is
// sent) because this kernel has no dummy driver.
func addDummy(t *testing.T, ns string) {
	t.Helper()
	nsRun(t, ns, nil, "ip", "link", "add", "dummy0", "type", "ifb")
	nsRun(t, ns, nil, "ip", "link", "set", "dummy0", "up")
	nsRun(t, ns, nil, "ip", "addr", "add", "192.0.2.1/24", "dev", "dummy0")
	nsRun(t, ns, nil, "ip", "-6", "addr", "add", "2001:db8::1/64", "dev", "dummy0", "nodad")
}

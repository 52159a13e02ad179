package nft

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

var netnsSeq atomic.Int32

// testNetns is a named network namespace the test created; it is deleted
// when the test ends.
type testNetns struct {
	name string
	fd   int
}

// newNetns creates a namespace with lo up and, when withDummy, an ifb
// device (this kernel has no dummy driver) holding the test's documentation
// addresses plus default routes through it, so route lookups for "public"
// destinations succeed and packets sent there vanish.
func newNetns(t testing.TB, withDummy bool) *testNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	name := fmt.Sprintf("egfw-nft-%d-%d", os.Getpid(), netnsSeq.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ns := &testNetns{name: name, fd: int(f.Fd())}
	ns.run(t, "ip", "link", "set", "lo", "up")
	if withDummy {
		ns.run(t, "ip", "link", "add", "dummy0", "type", "ifb")
		ns.run(t, "ip", "link", "set", "dummy0", "up")
		ns.run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "dummy0")
		ns.run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "dummy0")
		ns.run(t, "ip", "-6", "addr", "add", "2001:db8::1/64", "dev", "dummy0", "nodad")
		ns.run(t, "ip", "route", "add", "default", "dev", "dummy0")
		ns.run(t, "ip", "-6", "route", "add", "default", "dev", "dummy0")
	}
	return ns
}

// run runs a command in the namespace and returns its output.
func (ns *testNetns) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return run(t, "nsenter", append([]string{"--net=/run/netns/" + ns.name, name}, args...)...)
}

// nft runs the nft CLI in the namespace, optionally feeding a script.
func (ns *testNetns) nft(t testing.TB, args ...string) string {
	t.Helper()
	return ns.run(t, "nft", args...)
}

func (ns *testNetns) nftScript(t testing.TB, script string) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s\n%s", err, out, script)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// manager returns a Manager bound to the namespace, closed at test end.
func (ns *testNetns) manager(t testing.TB) *Manager {
	t.Helper()
	m, err := New(WithNetNS(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// do runs f on a thread switched into the namespace, so sockets f creates
// belong to it; the thread is switched back before it is released.
func (ns *testNetns) do(t testing.TB, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(ns.fd)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot return to the original netns: %v", err))
		}
	}()
	f()
}

package netnstest

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

// RunDir is where ip-netns(8) keeps named namespaces.
const RunDir = "/run/netns"

var seq atomic.Int32

// UniqueName returns prefix, the pid and a sequence number, as
// "egfw-nft-1234-7": unique within the process, and unique among
// concurrent processes by the pid. RemoveStale knows a leftover by it.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
}

// NeedRoot skips the test unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and cgroups (CI runs as root)")
	}
}

// NS is a named network namespace a test created.
type NS struct {
	Name string
	file *os.File
}

// New creates the network namespace name with lo up. When the test ends it
// is deleted; a process still in it then fails the test and is killed.
func New(t testing.TB, name string) *NS {
	t.Helper()
	NeedRoot(t)
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { remove(t, name) })
	f, err := os.Open(filepath.Join(RunDir, name))
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	ns := &NS{Name: name, file: f}
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// remove deletes the namespace, first killing (and reporting) any process
// left in it.
func remove(t testing.TB, name string) {
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("namespace %s still has processes at cleanup: %s", name, strings.Fields(string(out)))
		killPids(strings.Fields(string(out)))
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("delete namespace %s: %v: %s", name, err, out)
	}
}

// Path is the namespace's file, for nsenter --net= or setns.
func (ns *NS) Path() string { return PathOf(ns.Name) }

// PathOf is the file of the namespace ns: a name under RunDir, or an
// absolute path (/proc/PID/ns/net, a container runtime's file) as it is.
func PathOf(ns string) string {
	if filepath.IsAbs(ns) {
		return ns
	}
	return filepath.Join(RunDir, ns)
}

// Cmd is argv run in the namespace ns (a name or a path, see PathOf) with
// nsenter, which, unlike ip netns exec, leaves /sys and the mounts alone.
func Cmd(ns string, argv ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + PathOf(ns), "--"}, argv...)...)
}

// Fd is an open fd of the namespace, valid until the test ends: for
// nftables.WithNetNSFd, netlink.NewHandleAt or netns.Set.
func (ns *NS) Fd() int { return int(ns.file.Fd()) }

// Cmd is argv run in the namespace (see the function Cmd).
func (ns *NS) Cmd(argv ...string) *exec.Cmd { return Cmd(ns.Name, argv...) }

// Run runs a command in the namespace and returns its output; a failure
// fails the test.
func (ns *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Output(t, ns.Cmd(append([]string{name}, args...)...))
}

// RunInput is Run with stdin, e.g. an nft -f - script.
func (ns *NS) RunInput(t testing.TB, stdin, name string, args ...string) string {
	t.Helper()
	return output(t, ns.Cmd(append([]string{name}, args...)...), stdin)
}

// IP runs ip(8) with args in the namespace (ip -n NAME ...).
func (ns *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"-n", ns.Name}, args...)...)
}

// Do runs f on a thread switched into the namespace, so sockets f creates
// belong to it; the thread is switched back before it is released. Other
// goroutines f starts run elsewhere (see InNetns).
func (ns *NS) Do(t testing.TB, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(ns.Fd())); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot return to the original netns: %v", err))
		}
	}()
	f()
}

// Blackhole adds an ifb device dev (the kernel here has no dummy driver;
// ifb drops what it is sent) holding addrs, up. Packets routed into it
// vanish, which makes every other address of its prefixes a black hole.
func (ns *NS) Blackhole(t testing.TB, dev string, addrs ...string) {
	t.Helper()
	ns.IP(t, "link", "add", dev, "type", "ifb")
	ns.IP(t, "link", "set", dev, "up")
	addAddrs(t, ns.Name, dev, addrs)
}

// End is one end of a veth pair: the name of its namespace, its device
// name and its addresses.
type End struct {
	NS    string
	Dev   string
	Addrs []string // with prefix length, e.g. "10.0.0.1/24"; IPv6 without DAD
}

// Veth connects a and b with a veth pair, adds their addresses and sets
// both ends up.
func Veth(t testing.TB, a, b End) {
	t.Helper()
	Run(t, "ip", "-n", a.NS, "link", "add", a.Dev, "type", "veth", "peer", "name", b.Dev, "netns", b.NS)
	for _, e := range []End{a, b} {
		addAddrs(t, e.NS, e.Dev, e.Addrs)
		Run(t, "ip", "-n", e.NS, "link", "set", e.Dev, "up")
	}
}

func addAddrs(t testing.TB, ns, dev string, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		Run(t, "ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad")
	}
}

// Run runs a command and returns its combined output; a failure fails the
// test.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Output(t, exec.Command(name, args...))
}

// Output runs cmd and returns its standard output; a failure fails the
// test.
func Output(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	return output(t, cmd, "")
}

func output(t testing.TB, cmd *exec.Cmd, stdin string) string {
	t.Helper()
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	// Standard output only: ip(8) may warn on stderr and still succeed,
	// and a caller parsing the output must not read the warning.
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && stdin != "" {
		t.Fatalf("%s: %v: %s%s\n%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String(), stdin)
	}
	if err != nil {
		t.Fatalf("%s: %v: %s%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

package netnstest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const testPrefix = "egfw-kit-"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && !InChild() {
		RemoveStale(testPrefix)
	}
	os.Exit(m.Run())
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName("p-"), UniqueName("p-")
	want := "p-" + strconv.Itoa(os.Getpid()) + "-"
	if a == b || !strings.HasPrefix(a, want) || !strings.HasPrefix(b, want) {
		t.Errorf("UniqueName gave %q and %q; want two names starting %q", a, b, want)
	}
}

// deadPid is the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestStale(t *testing.T) {
	dead, self := strconv.Itoa(deadPid(t)), strconv.Itoa(os.Getpid())
	cases := []struct {
		name string
		want bool
	}{
		{"p-" + dead + "-3", true},
		{"p-" + dead + "-3-host", true},
		{"p-" + dead + "-3.slice", true},
		{"p-" + dead, true},
		{"p-" + self + "-3", false},
		{"p-1-3", false}, // init is alive
		{"q-" + dead + "-3", false},
		{"p-x" + dead + "-3", false},
		{"p--3", false},
		{"p-", false},
	}
	for _, tc := range cases {
		if got := stale("p-", tc.name); got != tc.want {
			t.Errorf("stale(%q) = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestCgroup2Mount(t *testing.T) {
	const (
		hybrid = "25 1 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs ro\n" +
			"26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n" +
			"27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
		unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
		subtree = "40 1 0:30 /system.slice /mnt/sub rw - cgroup2 cgroup2 rw\n" + unified
	)
	cases := []struct{ name, in, want string }{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified"},
		{"unified", unified, "/sys/fs/cgroup"},
		{"a bind mount of a subtree is skipped", subtree, "/sys/fs/cgroup"},
		{"none", "27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cgroup2Mount(strings.NewReader(tc.in))
			if got != tc.want || (err != nil) != (tc.want == "") {
				t.Errorf("cgroup2Mount = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// nsInode is the inode of the network namespace a path names.
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestNamespace(t *testing.T) {
	NeedRoot(t)
	var name string
	t.Run("create", func(t *testing.T) {
		ns := New(t, UniqueName(testPrefix))
		name = ns.Name
		host := nsInode(t, "/proc/self/ns/net")
		if got := nsInode(t, ns.Path()); got == host {
			t.Fatal("the namespace is the test's own")
		}
		var st unix.Stat_t
		if err := unix.Fstat(ns.Fd(), &st); err != nil || st.Ino != nsInode(t, ns.Path()) {
			t.Errorf("Fd is not the namespace (%v)", err)
		}
		ns.Do(t, func() {
			if got := nsInode(t, "/proc/thread-self/ns/net"); got != nsInode(t, ns.Path()) {
				t.Errorf("Do runs in namespace %d; want %d", got, nsInode(t, ns.Path()))
			}
		})
		if nsInode(t, "/proc/thread-self/ns/net") != host {
			t.Error("Do did not switch the thread back")
		}
		if out := ns.IP(t, "link", "show", "lo"); !strings.Contains(out, "UP") {
			t.Errorf("lo is not up: %s", out)
		}
		ns.Blackhole(t, "bh0", "192.0.2.1/24", "2001:db8::1/64")
		if out := ns.Run(t, "ip", "-o", "addr", "show", "dev", "bh0"); !strings.Contains(out, "192.0.2.1/24") || !strings.Contains(out, "2001:db8::1/64") {
			t.Errorf("bh0 addresses: %s", out)
		}
		peer := New(t, UniqueName(testPrefix))
		Veth(t, End{ns.Name, "va", []string{"10.9.0.1/24"}}, End{peer.Name, "vb", []string{"10.9.0.2/24"}})
		var ln net.Listener
		ns.Do(t, func() {
			var err error
			if ln, err = net.Listen("tcp", "10.9.0.1:0"); err != nil {
				t.Fatal(err)
			}
		})
		defer ln.Close()
		peer.Do(t, func() {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
			if err != nil {
				t.Fatalf("connect over the veth pair: %v", err)
			}
			if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "10.9.0.2" {
				t.Errorf("connected from %s; want 10.9.0.2", got)
			}
			c.Close()
		})
	})
	if _, err := os.Stat(filepath.Join(RunDir, name)); !os.IsNotExist(err) {
		t.Errorf("namespace %s is still there after its test: %v", name, err)
	}
}

func TestCgroup(t *testing.T) {
	NeedRoot(t)
	var dir string
	t.Run("create", func(t *testing.T) {
		dir = NewCgroup(t, UniqueName(testPrefix), "a")
		cmd := exec.Command("sleep", "60")
		closeFD, err := IntoCgroup(cmd, filepath.Join(dir, "a"))
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		closeFD()
		go cmd.Wait()
		if pids := cgroupPids(filepath.Join(dir, "a")); len(pids) != 1 || pids[0] != cmd.Process.Pid {
			t.Errorf("cgroup a holds %v; want the sleep, %d", pids, cmd.Process.Pid)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s is still there after its test (the sleep in it was to be killed): %v", dir, err)
	}
}

func TestRemoveStale(t *testing.T) {
	NeedRoot(t)
	root, err := CgroupRoot()
	if err != nil {
		t.Fatal(err)
	}
	dead := testPrefix + strconv.Itoa(deadPid(t)) + "-1"
	live := UniqueName(testPrefix)
	for _, name := range []string{dead, live} {
		Run(t, "ip", "netns", "add", name)
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(os.TempDir(), name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", live).Run()
		os.Remove(filepath.Join(root, live))
		os.Remove(filepath.Join(os.TempDir(), live))
	})
	RemoveStale(testPrefix)
	for _, p := range []string{filepath.Join(RunDir, dead), filepath.Join(root, dead), filepath.Join(os.TempDir(), dead)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s of a dead process is still there: %v", p, err)
		}
	}
	for _, p := range []string{filepath.Join(RunDir, live), filepath.Join(root, live), filepath.Join(os.TempDir(), live)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s of this live process was removed: %v", p, err)
		}
	}
}

func TestInNetns(t *testing.T) {
	if !InNetns(t, testPrefix, func(t *testing.T, ns *NS) { ns.Blackhole(t, "bh0", "192.0.2.1/24") }) {
		return
	}
	ifc, err := net.InterfaceByName("bh0")
	if err != nil {
		t.Fatalf("the child does not see the device its parent's setup made: %v", err)
	}
	addrs, _ := ifc.Addrs()
	if len(addrs) == 0 || addrs[0].String() != "192.0.2.1/24" {
		t.Errorf("bh0 addresses = %v; want 192.0.2.1/24", addrs)
	}
}

// TestNotInTheBinary keeps the kit out of egressfw: only tests may import
// it (nor may the binary link the testing package through it).
func TestNotInTheBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH to list the binary's packages")
	}
	cmd := exec.Command(goBin, "list", "-deps", "github.com/egressfw/egressfw/cmd/egressfw")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list -deps: %v: %s", err, ee.Stderr)
	} else if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps gave %v", deps)
	}
	for _, d := range deps {
		if d == "github.com/egressfw/egressfw/internal/netnstest" || d == "testing" {
			t.Errorf("the egressfw binary links %s", d)
		}
	}
}

package nft

import (
	"path/filepath"
	"testing"

	"github.com/egressfw/egressfw/internal/netnstest"
	"golang.org/x/sys/unix"
)

// prefix starts the name of every namespace and cgroup this package's
// tests make (see netnstest.UniqueName).
const prefix = "egfw-nft-"

// testNetns is a network namespace the test created (netnstest.New); it
// is deleted when the test ends.
type testNetns struct{ *netnstest.NS }

// newNetns creates a namespace with lo up and, when withDummy, a black-hole
// device holding the test's documentation addresses plus default routes
// through it, so route lookups for "public" destinations succeed and
// packets sent there vanish.
func newNetns(t testing.TB, withDummy bool) *testNetns {
	t.Helper()
	ns := &testNetns{netnstest.New(t, netnstest.UniqueName(prefix))}
	if withDummy {
		ns.Blackhole(t, "dummy0", "192.0.2.1/24", "198.51.100.1/24", "2001:db8::1/64")
		ns.IP(t, "route", "add", "default", "dev", "dummy0")
		ns.IP(t, "-6", "route", "add", "default", "dev", "dummy0")
	}
	return ns
}

// nft runs the nft CLI in the namespace.
func (ns *testNetns) nft(t testing.TB, args ...string) string {
	t.Helper()
	return ns.Run(t, "nft", args...)
}

// nftScript loads an nftables script into the namespace.
func (ns *testNetns) nftScript(t testing.TB, script string) {
	t.Helper()
	ns.RunInput(t, script, "nft", "-f", "-")
}

// manager returns a Manager bound to the namespace, closed at test end.
func (ns *testNetns) manager(t testing.TB) *Manager {
	t.Helper()
	m, err := New(WithNetNS(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// testCgroups creates the cgroup <mount>/egfw-nft-PID-N and returns the
// mount and the test's relative root; everything below is removed (its
// processes killed) at test end.
func testCgroups(t *testing.T) (mnt, rel string) {
	t.Helper()
	dir := netnstest.NewCgroup(t, netnstest.UniqueName(prefix))
	return filepath.Dir(dir), filepath.Base(dir)
}

// cgroupID is the inode number of a cgroup directory.
func cgroupID(t *testing.T, dir string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

package tproxy

import (
	"os"
	"testing"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// prefix starts the name of every namespace this package's tests make
// (see netnstest.UniqueName).
const prefix = "egfw-tpx-"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && !netnstest.InChild() {
		netnstest.RemoveStale(prefix)
	}
	os.Exit(m.Run())
}

// inNetns runs the calling top-level test in a fresh network namespace,
// every thread of a re-executed test binary inside it (netnstest.InNetns):
// in the parent it returns false and the caller must return; in the child
// it returns true, after setup (may be nil) prepared the namespace.
func inNetns(t *testing.T, setup func(t *testing.T, ns *netnstest.NS)) bool {
	t.Helper()
	return netnstest.InNetns(t, prefix, setup)
}

// nft loads an nftables script into namespace ns.
func nft(t *testing.T, ns *netnstest.NS, script string) {
	t.Helper()
	ns.RunInput(t, script, "nft", "-f", "-")
}

// addDummy gives ns a black-hole interface holding the test's "public"
// source addresses; packets routed into it vanish, which makes any other
// address in its prefixes a black hole.
func addDummy(t *testing.T, ns *netnstest.NS) {
	t.Helper()
	ns.Blackhole(t, "dummy0", "192.0.2.1/24", "2001:db8::1/64")
}

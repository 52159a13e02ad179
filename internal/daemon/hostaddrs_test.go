package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/policy"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestHostAddrsFollowLocalRoutes: ranges the kernel delivers to this host
// without any interface listing them (AnyIP: "ip route add local
// 10.99.0.0/16 dev lo") are the host's own, so internal even where
// public_cidrs lifts the block; they are picked up when the route appears
// and dropped when it goes, like interface addresses. Runs in a network
// namespace of its own.
func TestHostAddrsFollowLocalRoutes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	name := fmt.Sprintf("egfw-hostaddr-%d", os.Getpid())
	ipns := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", name, err, out)
		}
	})
	ipns("link", "set", "lo", "up")
	nsh, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)

	// What the daemon would classify with: the lab's public_cidrs, and
	// whatever the watcher last reported.
	cl, err := policy.NewClassifier(nil, []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16"),
		netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ifaces map[netip.Addr]string
	set := func(ranges []netip.Prefix, ifs map[netip.Addr]string) {
		cl.SetHostRanges(ranges)
		mu.Lock()
		ifaces = ifs
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := watchHostAddrs(ctx, hostSource{h: h, ns: &nsh}, set, func(err error) { t.Errorf("watch: %v", err) }); err != nil {
		t.Fatal(err)
	}
	isHost := func(a string) bool { return cl.Classify(netip.MustParseAddr(a)).Source == policy.SourceHost }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 5s: %s", what)
			}
		}
	}

	for _, a := range []string{"10.99.3.4", "198.51.100.7", "2001:db8:aa::5"} {
		if got := cl.Classify(netip.MustParseAddr(a)); got.Internal {
			t.Fatalf("before any route: %s", got.Reason())
		}
	}
	ipns("route", "add", "local", "10.99.0.0/16", "dev", "lo")
	ipns("-6", "route", "add", "local", "2001:db8:aa::/64", "dev", "lo")
	ipns("addr", "add", "198.51.100.7/32", "dev", "lo")
	waitFor("10.99.3.4 (AnyIP local route) is the host's", func() bool { return isHost("10.99.3.4") })
	waitFor("2001:db8:aa::5 (IPv6 local route) is the host's", func() bool { return isHost("2001:db8:aa::5") })
	waitFor("198.51.100.7 (interface address) is the host's", func() bool { return isHost("198.51.100.7") })
	if got := cl.Classify(netip.MustParseAddr("::ffff:10.99.3.4")); !got.Internal {
		t.Errorf("the IPv4-mapped form of a local-route address is public: %s", got.Reason())
	}
	for _, a := range []string{"10.100.0.1", "198.51.100.8", "2001:db8:ab::5"} {
		if isHost(a) {
			t.Errorf("%s is not in any local route but counts as the host's", a)
		}
	}
	mu.Lock()
	if ifaces[netip.MustParseAddr("198.51.100.7")] != "lo" {
		t.Errorf("interface of 198.51.100.7 = %q, want lo", ifaces[netip.MustParseAddr("198.51.100.7")])
	}
	mu.Unlock()

	ipns("route", "del", "local", "10.99.0.0/16", "dev", "lo")
	waitFor("10.99.3.4 is no longer the host's once its route is gone", func() bool { return !isHost("10.99.3.4") })
	if !isHost("2001:db8:aa::5") || !isHost("198.51.100.7") {
		t.Error("removing one route dropped the others")
	}
}

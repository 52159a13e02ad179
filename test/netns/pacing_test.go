package netns

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// TestPacedTenant: a tenant over its max_new_per_second is delayed, not
// refused — also past its listener's accept queue, where the kernel drops
// the SYN and the client retransmits — and another tenant is served
// meanwhile at once. The accept queue is shrunk to 8 (net.core.somaxconn
// of the test's namespace) so that the burst overflows it.
func TestPacedTenant(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	netnstest.Output(t, nsCmd(tp.host, "sysctl", "-q", "-w", "net.core.somaxconn=8"))
	const rate, n = 10, 40
	tenants := tp.tenant("a", "a", 0, "max_new_per_second = 10") + tp.tenant("b", "", tp.uid, "")
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tenants}))
	www := args(resolve("www.example.com", "80", ipPublic), "-m", "30", "http://www.example.com/")

	t0 := time.Now()
	res := make([]curlRes, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { res[i] = tp.curl(tp.inCgroup("a"), www...) })
	}
	time.Sleep(time.Second) // the burst is through, the rest wait
	other := tp.curl(tp.asUID(), www...)
	check(t, "unpaced tenant b during a's burst", other, okPublic)
	if other.dur > 2*time.Second { // loose: 40 curl processes share this machine
		t.Errorf("tenant b took %v while tenant a was paced; want it served at once", other.dur.Round(time.Millisecond))
	}
	wg.Wait()
	all := time.Since(t0)
	slow := 0
	for _, r := range res {
		check(t, "paced request", r, okPublic)
		if r.dur > time.Second {
			slow++
		}
	}
	if min := time.Duration(n-rate-2) * time.Second / rate; all < min {
		t.Errorf("%d requests at %d/s took %v, want at least %v", n, rate, all.Round(time.Millisecond), min)
	}
	if slow == 0 {
		t.Errorf("no request of tenant a was delayed past a second")
	}
	if drops := tp.listenOverflows(); drops == 0 {
		t.Errorf("the accept queue never overflowed (TcpExt ListenOverflows 0): the SYN-retransmit path was not exercised")
	}
	t.Logf("%d requests of the paced tenant in %v (%d over a second); tenant b served in %v",
		n, all.Round(time.Millisecond), slow, other.dur.Round(time.Millisecond))
	// Each line is written when its connection ends, after curl has the reply.
	allowedA := func(l logLine) bool { return l.str("tenant") == "a" && l.str("decision") == "allow" }
	if got := len(d.waitCount(0, allowedA, n, 5*time.Second)); got != n {
		t.Errorf("%d allow lines for tenant a, want %d", got, n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// listenOverflows reads TcpExt ListenOverflows of the host namespace: SYNs
// or handshakes dropped because an accept queue was full.
func (tp *topo) listenOverflows() int {
	tp.t.Helper()
	lines := strings.Split(netnstest.Output(tp.t, nsCmd(tp.host, "cat", "/proc/net/netstat")), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != "TcpExt:" || len(vals) != len(keys) {
			continue
		}
		for j, k := range keys {
			if k == "ListenOverflows" {
				n, _ := strconv.Atoi(vals[j])
				return n
			}
		}
	}
	tp.t.Fatal("no TcpExt ListenOverflows in /proc/net/netstat")
	return 0
}

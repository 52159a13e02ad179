package netns

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// TestDrippedHello: one tenant opens 150 connections that drip a real
// post-quantum ClientHello in one-byte TLS records, each record in its own
// write a millisecond apart, and 150 that write theirs (one record) a byte
// at a time a millisecond apart, while the same tenant's ordinary clients
// send their ClientHello in 16 records cut into 7-byte writes. egressfw
// runs in a cgroup of its own; the CPU time it uses over the run, counted
// over at least dripWindow (the time the drip takes when nothing refuses
// it), must stay under a quarter of a core. Every connection gets its
// proper verdict: the one-byte records are refused (too_many_records)
// without reaching the site; the one-byte writes and the fragmented
// clients reach the public site, or are refused for a name that resolves
// internally.
func TestDrippedHello(t *testing.T) {
	tp := newTopo(t)
	cg := tp.ownCgroup("egressfw") // before egressfw, so it is removed after egressfw stops
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[443]", peekTimeout: "30s"}))
	cg.adopt(d.cmd.Process.Pid)
	a := tp.inCgroup("a")
	tp.pub.settle()
	pub0 := tp.pub.conns("")
	i := d.since()

	groups := []helloGroup{
		{name: "one-byte records", n: 150, sni: "www.example.com", flags: []string{"-record", "1"}},
		{name: "one-byte writes", n: 150, sni: "www.example.com", flags: []string{"-chunk", "1"}},
		{name: "16 records in 7-byte writes", n: 20, sni: "www.example.com", flags: []string{"-record", "100", "-chunk", "7"}},
		{name: "internal name, 16 records", n: 10, sni: "bi-tool.example.com", flags: []string{"-record", "100", "-chunk", "7"}},
	}
	cpu0, t0 := cg.usage(), time.Now()
	res := tp.runHelloGroups(a, groups)
	time.Sleep(time.Until(t0.Add(dripWindow)))
	used, wall := cg.usage()-cpu0, time.Since(t0)
	cores := used.Seconds() / wall.Seconds()
	t.Logf("egressfw used %v of CPU in %v: %.3f cores", used.Round(time.Millisecond), wall.Round(time.Millisecond), cores)
	if cores > 0.25 {
		t.Errorf("egressfw used %.2f cores while 300 connections dripped their ClientHello; want under 0.25", cores)
	}

	const ok, denied = "200 hello from public (host www.example.com)", "alert: tls: access denied"
	wants := []string{denied, ok, ok, denied}
	for k, g := range groups {
		r := res[k]
		t.Logf("%s: %d-byte ClientHello in %d writes: %v after %dms", g.name, r.HelloBytes, r.Writes, r.Outcomes, r.MS)
		if r.Outcomes[wants[k]] != g.n {
			t.Errorf("%s: outcomes %v; want all %d %q", g.name, r.Outcomes, g.n, wants[k])
		}
	}
	tp.pub.atLeast(func() int { return tp.pub.conns("") - pub0 }, groups[1].n+groups[2].n)
	if got, want := tp.pub.conns("")-pub0, groups[1].n+groups[2].n; got != want {
		t.Errorf("the public site saw %d connections; want only the %d of the one-byte writes and the fragmented clients", got, want)
	}
	reasons := map[string]int{}
	isConn := func(l logLine) bool { return l.str("msg") == "connection" }
	for _, l := range d.waitCount(i, isConn, groups[0].n+groups[1].n+groups[2].n+groups[3].n, 5*time.Second) {
		reasons[l.str("reason")+" "+l.str("name")]++
	}
	t.Logf("egressfw log reasons: %v", reasons)
	if reasons["too_many_records "] != groups[0].n {
		t.Errorf("log reasons %v; want %d too_many_records with no name", reasons, groups[0].n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// TestDrippedHTTPHead: one tenant's 150 connections write a 4 KiB HTTP
// request head a byte at a time, a millisecond apart, next to ordinary
// requests of the same tenant. An HTTP head gives no length to wait for
// (SO_RCVLOWAT), so egressfw paces the reads of a connection that keeps
// sending little (sni.Peek); the CPU it uses over the run (its own
// cgroup's cpu.stat) must stay under a quarter of a core (0.46 cores when
// it read every byte as it came), and every request is served.
func TestDrippedHTTPHead(t *testing.T) {
	tp := newTopo(t)
	cg := tp.ownCgroup("egressfw")
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80]", peekTimeout: "30s"}))
	cg.adopt(d.cmd.Process.Pid)
	a := tp.inCgroup("a")
	tp.pub.settle()
	pub0 := tp.pub.conns("")
	groups := []helloGroup{
		{name: "4 KiB heads in one-byte writes", n: 150, sni: "www.example.com", head: true, flags: []string{"-size", "4096", "-chunk", "1"}},
		{name: "ordinary requests", n: 20, sni: "www.example.com", head: true, flags: []string{"-chunk", "100000"}},
	}
	cpu0, t0 := cg.usage(), time.Now()
	res := tp.runHelloGroups(a, groups)
	used, wall := cg.usage()-cpu0, time.Since(t0)
	cores := used.Seconds() / wall.Seconds()
	t.Logf("egressfw used %v of CPU in %v: %.3f cores", used.Round(time.Millisecond), wall.Round(time.Millisecond), cores)
	if cores > 0.25 {
		t.Errorf("egressfw used %.2f cores while 150 connections dripped their request head; want under 0.25", cores)
	}
	const ok = "200 hello from public (host www.example.com)"
	for k, g := range groups {
		r := res[k]
		t.Logf("%s: %d-byte head in %d writes: %v after %dms", g.name, r.HelloBytes, r.Writes, r.Outcomes, r.MS)
		if r.Outcomes[ok] != g.n {
			t.Errorf("%s: outcomes %v; want all %d %q", g.name, r.Outcomes, g.n, ok)
		}
	}
	tp.pub.atLeast(func() int { return tp.pub.conns("") - pub0 }, groups[0].n+groups[1].n)
	if got, want := tp.pub.conns("")-pub0, groups[0].n+groups[1].n; got != want {
		t.Errorf("the public site saw %d connections; want %d", got, want)
	}
}

// dripWindow is about how long the connections take to drip a 1.5 KiB
// ClientHello a millisecond per write when egressfw reads it all (2.6-3.7s
// measured with the parser that started over on every read).
const dripWindow = 3 * time.Second

// helloGroup is one testsrv hello run: n connections with the given flags.
type helloGroup struct {
	name  string
	n     int
	sni   string
	head  bool // testsrv head (HTTP, port 80) instead of testsrv hello (TLS, port 443)
	flags []string
}

// helloRes is what testsrv hello printed.
type helloRes struct {
	Outcomes   map[string]int `json:"outcomes"`
	HelloBytes int            `json:"hello_bytes"`
	Writes     int            `json:"writes"`
	MS         int64          `json:"ms"`
	Err        string         `json:"-"`
}

// runHelloGroups runs every group at once as w and waits for them all.
func (tp *topo) runHelloGroups(w who, groups []helloGroup) []helloRes {
	tp.t.Helper()
	res := make([]helloRes, len(groups))
	var wg sync.WaitGroup
	for k, g := range groups {
		argv := []string{testsrvBin, "hello", "-addr", ipPublic + ":443", "-cacert", tp.file("ca.pem")}
		if g.head {
			argv = []string{testsrvBin, "head", "-addr", ipPublic + ":80"}
		}
		argv = append(append(argv, "-name", g.sni, "-n", strconv.Itoa(g.n), "-pause", "1ms", "-timeout", "60s"), g.flags...)
		cmd, closeFD := tp.command(w, argv...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		wg.Go(func() {
			defer closeFD()
			out, err := cmd.Output()
			if err != nil {
				res[k].Err = fmt.Sprintf("testsrv hello: %v: %s", err, stderr.String())
			} else if err := json.Unmarshal(out, &res[k]); err != nil {
				res[k].Err = fmt.Sprintf("testsrv hello: decode %q: %v", out, err)
			}
		})
	}
	wg.Wait()
	for k := range res {
		if res[k].Err != "" {
			tp.t.Fatalf("%s: %s", groups[k].name, res[k].Err)
		}
	}
	return res
}

// ownCgroup is a cgroup of the test's own outside the tenant slice, for
// measuring a process's CPU time.
type ownCgroup struct {
	tp  *topo
	dir string
}

// ownCgroup creates the cgroup <id>-name under the cgroup2 root and
// removes it (killing what is left inside) at cleanup.
func (tp *topo) ownCgroup(name string) *ownCgroup {
	tp.t.Helper()
	dir := netnstest.NewCgroup(tp.t, tp.id+"-"+name)
	return &ownCgroup{tp: tp, dir: dir}
}

// adopt moves the process pid (all its threads) into the cgroup.
func (c *ownCgroup) adopt(pid int) {
	c.tp.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		c.tp.t.Fatalf("move pid %d into %s: %v", pid, c.dir, err)
	}
}

// usage is the CPU time the cgroup's processes used since they joined it
// (cpu.stat usage_usec, which cgroup2 keeps with or without the cpu
// controller).
func (c *ownCgroup) usage() time.Duration {
	c.tp.t.Helper()
	f, err := os.Open(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		c.tp.t.Fatalf("read cpu.stat: %v", err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				c.tp.t.Fatalf("cpu.stat usage_usec %q: %v", v, err)
			}
			return time.Duration(us) * time.Microsecond
		}
	}
	c.tp.t.Fatalf("no usage_usec in %s/cpu.stat", c.dir)
	return 0
}

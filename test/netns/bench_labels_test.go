package netns

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/dockertest"
	"github.com/egressfw/egressfw/internal/netnstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// benchWorld is BenchmarkDockerLabels' topology: a host namespace with
// egressfw, a bridge br-bench (172.20.0.1/16) and a fake Engine API; a
// public namespace with an HTTP server (198.51.100.10); and containers,
// each a network namespace of its own (held open by a descriptor) with a
// veth pair on the bridge, labelled for tenant "trusted". Container 0 has
// its address configured and is the one that connects.
type benchWorld struct {
	b         *testing.B
	dir, host string
	hostH     *netlink.Handle
	bridge    int
	engine    *dockertest.FakeEngine
	ctrs      []dockertest.FakeContainer
	ns0       netns.NsHandle // container 0's namespace
}

const benchConfig = `[listener]
port = 15001
intercept_ports = [80]
[dns]
servers = ["198.51.100.10:53"]
[metrics]
listen = ""
[policy]
public_cidrs = ["198.51.100.0/24"]
[log]
level = "debug"
denial_burst = 1000
[firewall]
guard_cgroups = []
[docker]
socket = %q
[[tenant]]
name = "containers"
interfaces = ["br-*"]
source_cidrs = ["172.16.0.0/12"]
[[tenant]]
name = "trusted"
docker_labels = { "egressfw.tenant" = "trusted" }
`

func newBenchWorld(b *testing.B, n int) *benchWorld {
	netnstest.NeedRoot(b)
	if setupErr != nil {
		b.Fatalf("setting up the suite: %v", setupErr)
	}
	id := netnstest.UniqueName(prefix)
	w := &benchWorld{b: b, dir: filepath.Join(os.TempDir(), id), host: id + "-host"}
	if err := os.Mkdir(w.dir, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(w.dir) })
	host, pub := netnstest.New(b, w.host), netnstest.New(b, id+"-pub")
	netnstest.Veth(b, netnstest.End{NS: w.host, Dev: "vpub", Addrs: []string{"198.51.100.1/24"}},
		netnstest.End{NS: pub.Name, Dev: "vhost", Addrs: []string{"198.51.100.10/24"}})
	host.IP(b, "link", "add", "br-bench", "type", "bridge")
	host.IP(b, "addr", "add", "172.20.0.1/16", "dev", "br-bench")
	host.IP(b, "link", "set", "br-bench", "up")
	spec := filepath.Join(w.dir, "spec.json")
	if err := os.WriteFile(spec, []byte(`{"http": [":80"]}`), 0o644); err != nil {
		b.Fatal(err)
	}
	srv, err := startServer("pub", nsCmd(pub.Name, testsrvBin, "serve", "-spec", spec))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.stop)
	if w.hostH, err = netlink.NewHandleAt(netns.NsHandle(host.Fd())); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.hostH.Close)
	br, err := w.hostH.LinkByName("br-bench")
	if err != nil {
		b.Fatal(err)
	}
	w.bridge = br.Attrs().Index
	w.engine = dockertest.NewFakeEngine()
	ln, err := net.Listen("unix", filepath.Join(w.dir, "engine.sock"))
	if err != nil {
		b.Fatal(err)
	}
	api := &http.Server{Handler: w.engine.Handler()}
	go api.Serve(ln)
	b.Cleanup(func() { api.Close() })
	for i := range n {
		w.ctrs = append(w.ctrs, w.container(i))
	}
	return w
}

// container makes container i: a namespace, a veth pair on the bridge.
func (w *benchWorld) container(i int) dockertest.FakeContainer {
	b := w.b
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	ns, err := netns.New() // and the thread is in it
	if err2 := netns.Set(orig); err2 != nil {
		panic(err2)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	mac := net.HardwareAddr{2, 0x42, 0xac, 0x14, byte((i + 2) >> 8), byte(i + 2)}
	ip := fmt.Sprintf("172.20.%d.%d", (i+2)>>8, (i+2)&255)
	name := fmt.Sprintf("vb%d", i)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MasterIndex: w.bridge}, PeerName: "eth0",
		PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(ns))}
	if err := w.hostH.LinkAdd(veth); err != nil {
		b.Fatalf("veth %s: %v", name, err)
	}
	if err := w.hostH.LinkSetUp(veth); err != nil {
		b.Fatal(err)
	}
	if i == 0 {
		w.ns0 = ns
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		for _, dev := range []string{"lo", "eth0"} {
			l, err := h.LinkByName(dev)
			if err == nil {
				err = h.LinkSetUp(l)
			}
			if err == nil && dev == "eth0" {
				addr, _ := netlink.ParseAddr(ip + "/16")
				if err = h.AddrAdd(l, addr); err == nil {
					err = h.RouteAdd(&netlink.Route{Gw: net.ParseIP("172.20.0.1"), LinkIndex: l.Attrs().Index})
				}
			}
			if err != nil {
				b.Fatalf("container 0 %s: %v", dev, err)
			}
		}
	}
	return dockertest.FakeContainer{ID: fmt.Sprintf("%064x", i+1), Name: fmt.Sprintf("c%d", i), Labels: map[string]string{"egressfw.tenant": "trusted"},
		Sandbox: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns)), IP: ip, MAC: mac.String()}
}

// benchDaemon is egressfw run from the built binary, its log kept.
type benchDaemon struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []logLine
	done  chan struct{}
}

func (w *benchWorld) startEgressfw() *benchDaemon {
	b := w.b
	cfg := filepath.Join(w.dir, "egressfw.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(benchConfig, filepath.Join(w.dir, "engine.sock"))), 0o644); err != nil {
		b.Fatal(err)
	}
	d := &benchDaemon{cmd: nsCmd(w.host, egressfwBin, "run", "--config", cfg), done: make(chan struct{})}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.str("msg") != "connection" {
				d.mu.Lock()
				d.lines = append(d.lines, l)
				d.mu.Unlock()
			}
		}
		d.cmd.Wait()
	}()
	b.Cleanup(d.stop)
	return d
}

func (d *benchDaemon) stop() {
	if d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.done
	}
}

// wait returns the first log line from index from that f accepts, within
// timeout.
func (d *benchDaemon) wait(b *testing.B, from int, what string, timeout time.Duration, f func(logLine) bool) logLine {
	for deadline := time.Now().Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		d.mu.Lock()
		for _, l := range d.lines[min(from, len(d.lines)):] {
			if f(l) {
				d.mu.Unlock()
				return l
			}
		}
		d.mu.Unlock()
		if time.Now().After(deadline) {
			b.Fatalf("egressfw logged no %s in %v", what, timeout)
		}
	}
}

func (d *benchDaemon) since() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.lines)
}

// bound waits until egressfw logs n containers bound (from index from).
func (d *benchDaemon) bound(b *testing.B, from, n int) logLine {
	return d.wait(b, from, fmt.Sprintf("%d containers bound", n), 60*time.Second, func(l logLine) bool {
		ports, _ := l["ports"].(float64)
		return strings.HasPrefix(l.str("msg"), "docker: containers bound") && int(ports) == n
	})
}

func ms(l logLine, key string) float64 { v, _ := l[key].(float64); return v / 1000 }

// rate opens HTTP connections from container 0 to the public server
// through egressfw for d, with c workers, and returns connections per
// second.
func (w *benchWorld) rate(c int, d time.Duration) float64 {
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			if err := netns.Set(w.ns0); err != nil {
				failed.Add(1)
				return
			}
			for time.Now().Before(stop) {
				if benchGet() {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		w.b.Fatalf("%d of %d connections failed", f, f+ok.Load())
	}
	return float64(ok.Load()) / d.Seconds()
}

// benchGet makes one HTTP request on a new connection to the public server.
func benchGet() bool {
	conn, err := net.DialTimeout("tcp", "198.51.100.10:80", 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 198.51.100.10\r\nConnection: close\r\n\r\n"); err != nil {
		return false
	}
	resp, err := io.ReadAll(conn)
	return err == nil && strings.HasPrefix(string(resp), "HTTP/1.1 200 ")
}

// BenchmarkDockerLabels measures Docker-label tenants through the daemon
// (the built egressfw, following a fake Engine API) with 1 and with 1,000
// labelled containers, each on a bridge port of its own; per round, each
// count in turn (alternating which goes first):
//
//   - start_ms: the start's rule application, which binds the containers
//     read by then in the same transaction (config applied, rules_us), and
//     start_bound how many those were; bound_ms: from egressfw's start
//     until every container is bound;
//   - event_ms: a container removed, then started again: one bridge-table
//     update each, with the conntrack walk that forgets the removed
//     container's flows (mean of the two; the table starts each round
//     empty, since the walk costs O(entries));
//   - reload_ms: a reload (SIGHUP), which re-binds every container;
//   - conn/s: new HTTP connections per second from one labelled container
//     through its tenant's listener, 8 workers, 2 s.
func BenchmarkDockerLabels(b *testing.B) {
	counts := []int{1, 1000}
	w := newBenchWorld(b, counts[len(counts)-1])
	sum := map[string]float64{}
	rounds := 0
	for b.Loop() {
		if rounds%2 == 1 {
			counts[0], counts[1] = counts[1], counts[0]
		}
		for _, n := range counts {
			for k, v := range w.round(n) {
				sum[fmt.Sprintf("%s/containers=%d", k, n)] += v
			}
		}
		rounds++
	}
	for k, v := range sum {
		b.ReportMetric(v/float64(rounds), k)
	}
	b.ReportMetric(sum["conn/s/containers=1000"]/sum["conn/s/containers=1"], "conn-ratio-1000/1")
}

// round runs egressfw once with n containers and returns its figures.
func (w *benchWorld) round(n int) map[string]float64 {
	b := w.b
	// The previous round's connections linger in conntrack (TIME_WAIT);
	// an event's hygiene walks the whole table, so start from an empty one.
	if err := w.hostH.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		b.Fatal(err)
	}
	w.engine.Set(w.ctrs[:n])
	t0 := time.Now()
	d := w.startEgressfw()
	applied := d.wait(b, 0, "config applied", 30*time.Second, func(l logLine) bool { return l.str("msg") == "config applied" })
	first := d.wait(b, 0, "containers bound with the rules", 30*time.Second, func(l logLine) bool {
		return l.str("msg") == "docker: containers bound with the rules"
	})
	d.bound(b, 0, n)
	out := map[string]float64{"start_ms": ms(applied, "rules_us"), "bound_ms": float64(time.Since(t0).Microseconds()) / 1000}
	out["start_bound"], _ = first["ports"].(float64)

	last := w.ctrs[n-1]
	i := d.since()
	w.engine.Remove(last.ID)
	gone := d.bound(b, i, n-1)
	i = d.since()
	w.engine.Start(last)
	back := d.bound(b, i, n)
	out["event_ms"] = (ms(gone, "took_us") + ms(back, "took_us")) / 2

	i = d.since()
	d.cmd.Process.Signal(syscall.SIGHUP)
	reloaded := d.wait(b, i, "config applied after SIGHUP", 30*time.Second, func(l logLine) bool { return l.str("msg") == "config applied" })
	out["reload_ms"] = ms(reloaded, "rules_us")

	out["conn/s"] = w.rate(8, 2*time.Second)
	d.stop()
	return out
}

package netns

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const mb = 1 << 20

// bulkRes is one testsrv bulk transfer as the client saw it.
type bulkRes struct {
	Up     int64  `json:"up"`
	Down   int64  `json:"down"`
	DownOK bool   `json:"down_ok"`
	Err    string `json:"err"`
	MS     int64  `json:"ms"`
}

// TestBulkTransfer: 100 MB each way through egressfw, byte-exact, with the
// client half-closing first (then 100 MB flows back) and with the server
// half-closing first (then the client's last byte still arrives).
func TestBulkTransfer(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{}))
	for _, first := range []string{"client", "server"} {
		t.Run(first+" closes first", func(t *testing.T) {
			i := d.since()
			var res []bulkRes
			tp.helper(tp.inCgroup("a"), 2*time.Minute, &res, "bulk", "-addr", ipPublic+":8080", "-host", "www.example.com",
				"-first", first, "-up", fmt.Sprint(100*mb), "-down", fmt.Sprint(100*mb))
			r := res[0]
			if r.Err != "" || !r.DownOK || r.Down != 100*mb {
				t.Errorf("client: %+v; want 100 MB received intact", r)
			}
			// The server reports once it has read the client's last byte,
			// which can be after the client is done: wait for it (bounded).
			var evs []srvEvent
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if evs = tp.pub.filter(func(e srvEvent) bool { return e.Ev == "raw" && e.First == first }); len(evs) > 0 {
					break
				}
			}
			if len(evs) != 1 || !evs[0].UpOK || evs[0].UpBytes != 100*mb || evs[0].Err != "" {
				t.Errorf("server: %+v; want one transfer with 100 MB received intact", evs)
			}
			l, ok := d.connLog(i, "www.example.com", ipPublic+":8080")
			if !ok || l.str("decision") != "allow" || l["bytes_up"].(float64) < 100*mb || l["bytes_down"].(float64) < 100*mb {
				t.Errorf("log line %v, want an allowed connection with 100 MB each way", l)
			}
			t.Logf("%s first: 2 x 100 MB in %d ms", first, r.MS)
		})
	}
}

// download runs testsrv get of n pattern bytes from the public site's drip
// endpoint over ms milliseconds, in the background.
func (tp *topo) download(w who, n int64, ms int) func() getRes {
	return tp.downloadFrom(w, "www.example.com", n, ms)
}

// downloadFrom is download by another name of the public site.
func (tp *topo) downloadFrom(w who, name string, n int64, ms int) func() getRes {
	var res []getRes
	var wg sync.WaitGroup
	wg.Add(1)
	cmd, closeFD := tp.command(w, testsrvBin, "get", "-timeout", "60s", "-expect-bytes", fmt.Sprint(n),
		"-resolve", name+"="+ipPublic, fmt.Sprintf("http://%s/drip?n=%d&ms=%d", name, n, ms))
	go func() {
		defer wg.Done()
		defer closeFD()
		out, err := cmd.Output()
		if err != nil || json.Unmarshal([]byte("["+string(out)+"]"), &res) != nil || len(res) != 1 {
			res = []getRes{{Err: fmt.Sprintf("testsrv get: %v: %s", err, out)}}
		}
	}()
	return func() getRes { wg.Wait(); return res[0] }
}

// waitDrip waits until the public site has started serving a download.
func (tp *topo) waitDrip(t *testing.T) { tp.waitDripOf(t, "") }

// waitDripOf waits until the public site has started serving a download
// for name ("" any).
func (tp *topo) waitDripOf(t *testing.T, name string) {
	t.Helper()
	if !tp.pub.waitFor(func(e srvEvent) bool {
		return e.Ev == "http" && strings.HasPrefix(e.URI, "/drip") && (name == "" || e.Host == name)
	}, 10*time.Second) {
		t.Fatalf("the download from %q did not start", name)
	}
}

// TestReloadDuringTransfer: while two downloads run, a bad config is
// logged and ignored (both go on); then a good one that denies the name of
// one of them is applied to new connections and to the open ones: that
// download is closed at once (its connection line says the reload closed
// it and why), the other completes intact.
func TestReloadDuringTransfer(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{}))
	a := tp.inCgroup("a")
	api := args(resolve("api.example.com", "80", ipPublic), "http://api.example.com/")
	const size = 8 * mb
	finish := tp.download(a, size, 4000)
	finishAPI := tp.downloadFrom(a, "api.example.com", size, 4000)
	tp.waitDripOf(t, "www.example.com")
	tp.waitDripOf(t, "api.example.com")

	i := d.since()
	tp.writeConfig("egressfw.toml", "[listener]\nport = \"not a number\"\n")
	d.signal(syscall.SIGHUP)
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "reload failed; keeping the running config" }, 5*time.Second); !ok {
		t.Fatalf("bad config: no reload failure logged:\n%s", d.logText())
	}
	check(t, "api after the bad reload (old config kept)", tp.curl(a, api...), okPublic)

	i = d.since()
	tp.writeConfig("egressfw.toml", tp.config(cfgOpts{tenants: tp.tenant("a", "a", 0, `deny_domains = ["api.example.com"]`)}))
	t0 := time.Now()
	d.signal(syscall.SIGHUP)
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "config reloaded" }, 5*time.Second); !ok {
		t.Fatalf("good config: no reload logged:\n%s", d.logText())
	}
	check(t, "api after the good reload (new config applied)", tp.curl(a, api...), want{status: 403, body: "is on the deny list"})

	r := finishAPI()
	if r.Bytes >= size || r.Err == "" || time.Since(t0) > 3*time.Second {
		t.Errorf("download of the denied name: %+v, %v after the reload; want it cut short at once", r, time.Since(t0).Round(time.Millisecond))
	}
	l, ok := d.waitLogFrom(0, func(l logLine) bool { return l.str("msg") == "connection" && l.str("closed_by") != "" }, 3*time.Second)
	if !ok || l.str("name") != "api.example.com" || l.str("closed_by") != "reload" || l.str("closed_reason") != "denied_domain" ||
		l.str("decision") != "allow" {
		t.Errorf("connection line of the cut download %v; want name api.example.com, decision allow, closed_by reload, closed_reason denied_domain:\n%s",
			l, d.logText())
	}
	r = finish()
	if r.Status != 200 || !r.PatternOK || r.Bytes != size || r.Err != "" {
		t.Errorf("download across both reloads: %+v; want %d bytes intact", r, size)
	}
	if !d.running() {
		t.Error("egressfw exited")
	}
}

// TestSIGTERMDrain: on SIGTERM egressfw refuses new connections at once,
// lets a live download finish within shutdown_grace, exits 0, and leaves
// the tenant blocked (rules kept).
func TestSIGTERMDrain(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{shutdownGrace: "8s"}))
	a := tp.inCgroup("a")
	www := args("-m", "3", resolve("www.example.com", "80", ipPublic), "http://www.example.com/")
	const size = 4 * mb
	finish := tp.download(a, size, 3000)
	tp.waitDrip(t)
	tp.settleServers()
	pub0 := tp.pub.requests("")
	t0 := time.Now()
	d.signal(syscall.SIGTERM)
	if _, ok := d.waitLog(func(l logLine) bool { return l.str("msg") == "stopping: no new connections; draining" }, 3*time.Second); !ok {
		t.Fatalf("no drain logged:\n%s", d.logText())
	}
	r := tp.curl(a, www...)
	if r.exit == 0 || r.dur > time.Second {
		t.Errorf("new connection while draining: %v; want it refused at once", r)
	}
	res := finish()
	done := time.Since(t0)
	if res.Status != 200 || !res.PatternOK || res.Bytes != size {
		t.Errorf("download across SIGTERM: %+v; want %d bytes intact", res, size)
	}
	code, ok := d.wait(10 * time.Second)
	exited := time.Since(t0)
	if !ok || code != 0 {
		t.Fatalf("egressfw after SIGTERM: exited %v, code %d; want exit 0", ok, code)
	}
	if exited > 8*time.Second+time.Second {
		t.Errorf("exited %v after SIGTERM; want within shutdown_grace (8s)", exited)
	}
	if exited < done-100*time.Millisecond {
		t.Errorf("exited %v after SIGTERM but the download ended at %v", exited, done)
	}
	tp.settleServers() // a late event must not pass for none
	if n := tp.pub.requests(""); n != pub0 {
		t.Errorf("public site served %d new requests during the drain, want 0", n-pub0)
	}
	if r := tp.curl(a, www...); r.exit == 0 {
		t.Errorf("after the stop: %v; want the tenant still blocked (rules kept)", r)
	}
}

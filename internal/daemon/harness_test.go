package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnstest"
	"github.com/egressfw/egressfw/internal/proxy"
	"github.com/egressfw/egressfw/internal/proxy/proxytest"
)

// applyHarness is a Daemon in-process: the real data path (internal/proxy)
// on proxytest's loopback kernel and test network, a test DNS server, and
// rules that only record what they are given. Configs go through
// Daemon.apply and Daemon.reload, in production order.
type applyHarness struct {
	t        *testing.T
	d        *Daemon
	dns      *dnstest.Server
	kernel   *proxytest.Kernel
	logs     *proxytest.Logs
	rules    *fakeRules
	notifier *fakeNotifier
	dir      string // of the config file and the sub-uid and passwd files
}

// newApplyHarness starts a Daemon on proxytest.Config: tenants web, strict
// and audit.
func newApplyHarness(t *testing.T) *applyHarness {
	t.Helper()
	h := &applyHarness{t: t, dns: dnstest.New(t), kernel: &proxytest.Kernel{}, logs: &proxytest.Logs{},
		rules: &fakeRules{}, notifier: &fakeNotifier{}, dir: t.TempDir()}
	h.dns.Set("www.example.com", "198.51.100.10")
	h.dns.Set("example.com", "198.51.100.10")
	for _, f := range []string{"subuid", "passwd"} {
		if err := os.WriteFile(filepath.Join(h.dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := &Daemon{opts: Options{ConfigPath: filepath.Join(h.dir, "egressfw.toml"), Notifier: h.notifier},
		log: h.logs.Logger(), metrics: newMetrics("test"), slots: newSlotTable(4095), rules: h.rules}
	d.proxy = proxy.New(proxy.Options{Log: h.logs.Logger(), Metrics: d.metrics.reg, Dialer: proxytest.NewNet(t), Kernel: h.kernel})
	h.d = d
	t.Cleanup(func() {
		d.proxy.Close()
		if !d.proxy.Drain(5 * time.Second) {
			t.Error("connections still open 5s after the test")
		}
	})
	if err := d.apply(context.Background(), h.config(proxytest.Config)); err != nil {
		t.Fatal(err)
	}
	return h
}

// config parses text (a proxytest.Config, DNS server to fill in) with the
// harness's own sub-uid and passwd files.
func (h *applyHarness) config(text string) *config.Config {
	h.t.Helper()
	cfg, err := config.Parse([]byte(h.configText(text)), "harness")
	if err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

func (h *applyHarness) configText(text string) string {
	return fmt.Sprintf(text, h.dns.Addr) + fmt.Sprintf("[firewall]\nsubuid_file = %q\npasswd_file = %q\n",
		filepath.Join(h.dir, "subuid"), filepath.Join(h.dir, "passwd"))
}

// writeConfig writes the config file a reload reads.
func (h *applyHarness) writeConfig(text string) {
	h.t.Helper()
	if err := os.WriteFile(h.d.opts.ConfigPath, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// addr is where the listener of tenant's slot in gen listens ("" if none
// is open).
func (h *applyHarness) addr(gen *generation, tenant string) string {
	s, ok := gen.slots[tenant]
	if !ok {
		h.t.Fatalf("no tenant %q in the generation", tenant)
	}
	return h.kernel.Addr(fmt.Sprintf("127.0.0.1:%d", s.Port))
}

// request sends a request for host to the listener at addr as if addressed
// to 198.51.100.10:80 and returns its log line.
func (h *applyHarness) request(addr, host string) map[string]any {
	h.t.Helper()
	if addr == "" {
		h.t.Fatal("no listener to send the request to")
	}
	return proxytest.Request(h.t, h.kernel, h.logs, addr, "198.51.100.10:80", host)
}

// fakeRules is a ruleset that waits for ready, as the kernel's does (see
// nft.Manager.ApplyWhen), then calls during, then fails with fail or
// records gen as applied.
type fakeRules struct {
	mu      sync.Mutex
	during  func(gen *generation)
	fail    error
	asked   int
	applied []*generation
}

func (r *fakeRules) apply(_ context.Context, gen *generation, ready func() error) error {
	r.mu.Lock()
	r.asked++
	during, fail := r.during, r.fail
	r.mu.Unlock()
	if err := ready(); err != nil {
		return err
	}
	if during != nil {
		during(gen)
	}
	if fail != nil {
		return fail
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, gen)
	return nil
}

func (r *fakeRules) counts() (asked, applied int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked, len(r.applied)
}

// fakeNotifier records the status lines the daemon reports.
type fakeNotifier struct {
	mu     sync.Mutex
	status []string
}

func (n *fakeNotifier) Ready(status string)                    { n.Status(status) }
func (n *fakeNotifier) Reloading()                             {}
func (n *fakeNotifier) Stopping()                              {}
func (n *fakeNotifier) Watchdog(context.Context, func() error) {}
func (n *fakeNotifier) Status(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.status = append(n.status, status)
}

func (n *fakeNotifier) last() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.status) == 0 {
		return ""
	}
	return n.status[len(n.status)-1]
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/egressfw/egressfw/internal/proxy/proxytest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestApplyRollback: a reload runs in production order — the new
// listeners open, the rules go in once all are open, then the snapshot is
// installed, then the listeners of removed tenants close — and one that
// fails at any step (a config that does not parse, a listener that cannot
// be opened, rules the kernel refuses) leaves what runs as it was: the
// generation, the slots, the listeners and the policy that judges
// connections. The reload replaces tenant strict by tenant wide.
func TestApplyRollback(t *testing.T) {
	h := newApplyHarness(t)
	ctx := context.Background()
	strict := "name = \"strict\"\nuids = [1002]\nallow_domains = [\"www.example.com\"]\n"
	if !strings.Contains(proxytest.Config, strict) {
		t.Fatal("proxytest.Config no longer has tenant strict as this test expects")
	}
	second := strings.Replace(proxytest.Config, strict, "name = \"wide\"\nuids = [1004]\n", 1)
	running := h.d.gen.Load()
	strictAddr := h.addr(running, "strict")
	strictListen := fmt.Sprintf("127.0.0.1:%d", running.slots["strict"].Port) // the address asked of the kernel
	if _, applied := h.rules.counts(); applied != 1 {
		t.Fatalf("the start applied the rules %d times, want 1", applied)
	}
	wideAddr := func() string { return h.kernel.Addr(fmt.Sprintf("127.0.0.1:%d", running.cfg.Listener.Port+3)) } // slot 4: strict's 2 still held

	// unchanged checks that the failed reload left everything as it was.
	unchanged := func(step string) {
		t.Helper()
		if h.d.gen.Load() != running {
			t.Errorf("%s: the generation in force changed", step)
		}
		if _, ok := h.d.slots.byName["wide"]; ok {
			t.Errorf("%s: the slot table took wide's slot", step)
		}
		if a := wideAddr(); a != "" {
			t.Errorf("%s: wide's listener %s is still open", step, a)
		}
		if h.addr(running, "strict") != strictAddr {
			t.Errorf("%s: strict's listener moved or closed", step)
		}
		// strict's listener still judges by strict's policy.
		if l := h.request(strictAddr, "example.com"); l["tenant"] != "strict" || l["reason"] != "not_allowed_domain" {
			t.Errorf("%s: a connection to strict's listener was logged as %v, want strict's not_allowed_domain", step, l)
		}
		if !strings.Contains(h.notifier.last(), "failed, running previous config") {
			t.Errorf("%s: status %q does not say the reload failed", step, h.notifier.last())
		}
	}

	t.Run("config does not parse", func(t *testing.T) {
		h.writeConfig("[[tenant]\n")
		h.d.reload(ctx)
		if asked, _ := h.rules.counts(); asked != 1 {
			t.Errorf("the rules were asked %d times, want 1 (the start)", asked)
		}
		unchanged("bad config")
	})

	t.Run("config invalid", func(t *testing.T) {
		h.writeConfig(h.configText(proxytest.Config + "[limits]\nmax_connections = 0\n"))
		h.d.reload(ctx)
		// The status names the problem, not just the file (the error's
		// first line).
		if st := h.notifier.last(); !strings.Contains(st, "limits.max_connections") {
			t.Errorf("status %q does not name the key", st)
		}
		unchanged("invalid config")
	})

	t.Run("listener cannot be opened", func(t *testing.T) {
		h.kernel.Fail = func(ap netip.AddrPort) error {
			if ap.Port() == running.cfg.Listener.Port+3 && ap.Addr().Is6() {
				return syscall.EADDRINUSE
			}
			return nil
		}
		defer func() { h.kernel.Fail = nil }()
		h.writeConfig(h.configText(second))
		h.d.reload(ctx)
		if asked, applied := h.rules.counts(); asked != 2 || applied != 1 {
			t.Errorf("rules asked %d, applied %d times; want asked 2 (it waits for the listeners), applied 1", asked, applied)
		}
		if !strings.Contains(h.notifier.last(), `listen for tenant "wide"`) {
			t.Errorf("status %q does not name the tenant whose listener failed", h.notifier.last())
		}
		unchanged("listener failed")
	})

	t.Run("rules refused", func(t *testing.T) {
		var during map[string]any
		h.rules.fail = errors.New("apply nftables rules: operation not permitted")
		h.rules.during = func(gen *generation) {
			// The rules are asked only once wide's listener is open; the
			// running snapshot still holds no tenant for its slot.
			during = h.request(h.addr(gen, "wide"), "example.com")
		}
		defer func() { h.rules.fail, h.rules.during = nil, nil }()
		h.writeConfig(h.configText(second))
		h.d.reload(ctx)
		if during["tenant"] != "-" || during["reason"] != "tenant_removed" {
			t.Errorf("a connection to wide's listener while the rules went in was logged as %v, want reset as tenant_removed", during)
		}
		if asked, applied := h.rules.counts(); asked != 3 || applied != 1 {
			t.Errorf("rules asked %d, applied %d times; want 3 and 1", asked, applied)
		}
		unchanged("rules refused")
	})

	if got := testutil.ToFloat64(h.d.metrics.reloads.WithLabelValues("error")); got != 4 {
		t.Errorf("egressfw_reloads_total{result=error} = %v, want 4", got)
	}

	t.Run("reload succeeds", func(t *testing.T) {
		var during, old map[string]any
		h.rules.during = func(gen *generation) {
			during = h.request(h.addr(gen, "wide"), "example.com")
			old = h.request(strictAddr, "example.com")
		}
		defer func() { h.rules.during = nil }()
		h.writeConfig(h.configText(second))
		h.d.reload(ctx)
		next := h.d.gen.Load()
		if next == running || next.slots["wide"].ID != 4 {
			t.Fatalf("the reload did not apply: generation %+v, status %q", next.slots, h.notifier.last())
		}
		if during["reason"] != "tenant_removed" || old["tenant"] != "strict" {
			t.Errorf("while the rules went in: wide's connection %v, strict's %v; want the snapshot in force until the rules are in",
				during, old)
		}
		if l := h.request(h.addr(next, "wide"), "example.com"); l["tenant"] != "wide" || l["decision"] != "allow" {
			t.Errorf("after the reload, wide's connection was logged as %v, want wide allowed", l)
		}
		if a := h.kernel.Addr(strictListen); a != "" {
			t.Errorf("removed tenant strict's listener %s is still open", a)
		}
		if !strings.HasPrefix(h.notifier.last(), "serving 3 tenant(s)") {
			t.Errorf("status %q after the reload", h.notifier.last())
		}
	})
}

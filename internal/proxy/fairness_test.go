package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
)

// TestDenialFloodDoesNotHideOtherTenants: tenant web makes more distinct
// denials than the limiter ever tracked in all (4,096 before it kept them
// per tenant), within one window; tenant strict's denial and tenant
// audit's report-mode "would deny" are still logged.
func TestDenialFloodDoesNotHideOtherTenants(t *testing.T) {
	h := newHarness(t, "")
	const flood = 4200
	t0 := time.Now()
	for i := range flood {
		if status, _ := h.httpGet("web", "198.51.100.10:80", fmt.Sprintf("n%d.blocked.example", i)); status != "HTTP/1.1 403 Forbidden" {
			t.Fatalf("flood request %d: %q", i, status)
		}
	}
	t.Logf("%d distinct denials in %v", flood, time.Since(t0).Round(time.Millisecond))
	if status, _ := h.httpGet("strict", "198.51.100.10:80", "example.com"); status != "HTTP/1.1 403 Forbidden" {
		t.Fatalf("strict: %q", status)
	}
	if status, _ := h.httpGet("audit", "10.20.0.10:80", "bi-tool.example.com"); status != "HTTP/1.1 200 OK" {
		t.Fatalf("audit (report mode): %q", status)
	}
	h.waitLog(map[string]any{"tenant": "strict", "decision": "deny", "reason": "not_allowed_domain", "name": "example.com"})
	h.waitLog(map[string]any{"tenant": "audit", "decision": "would_deny", "reason": "internal_address", "name": "bi-tool.example.com"})
}

// TestSilentFloodLeavesOthersServed: with the default caps, two tenants
// each opening more silent connections than their peek cap (they hold the
// peek slots until peek_timeout) do not take every slot: a third tenant is
// still served at once.
func TestSilentFloodLeavesOthersServed(t *testing.T) {
	h := newHarness(t, "")
	cfg := *h.srv.state.Load().cfg
	cfg.Listener.PeekTimeout = config.D(10 * time.Second)
	h.apply(&cfg)
	def := config.Default().Limits
	flood := def.MaxPeekingPerTenant + 50
	for _, tenant := range []string{"web", "audit"} {
		h.kernel.SetOrig("198.51.100.10:443")
		var conns []net.Conn
		for range flood {
			// A refused connection may be reset before connect() returns.
			if c, err := net.DialTimeout("tcp", h.addrs[tenant][0], 2*time.Second); err == nil {
				conns = append(conns, c)
				t.Cleanup(func() { c.Close() })
			}
		}
		time.Sleep(200 * time.Millisecond)
		held := 0
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
				held++
			}
		}
		t.Logf("tenant %s holds %d of %d silent connections", tenant, held, flood)
		if held == 0 || held > def.MaxPeekingPerTenant {
			t.Errorf("tenant %s holds %d silent connections, want 1-%d", tenant, held, def.MaxPeekingPerTenant)
		}
	}
	t0 := time.Now()
	if status, _ := h.httpGet("strict", "198.51.100.10:80", "www.example.com"); status != "HTTP/1.1 200 OK" {
		t.Fatalf("third tenant got %q while two tenants flooded the peek slots", status)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("third tenant served after %v, want at once", d)
	}
	h.waitLog(map[string]any{"tenant": "audit", "reason": "over_limit"})
}

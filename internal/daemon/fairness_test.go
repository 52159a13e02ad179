package daemon

import (
	"fmt"
	"testing"
	"time"
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

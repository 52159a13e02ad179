package proxy

import (
	"sync"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPacedTenantIsDelayedNotRefused: a tenant over max_new_per_second has
// every connection served, later; another tenant is served meanwhile.
func TestPacedTenantIsDelayedNotRefused(t *testing.T) {
	const rate, n = 5, 20
	h := newHarness(t, "")
	cfg := *h.srv.state.Load().cfg
	cfg.Tenants = append([]config.Tenant(nil), cfg.Tenants...)
	cfg.Tenants[0].MaxNewPerSecond = rate // web
	h.apply(&cfg)

	t0 := time.Now()
	var wg sync.WaitGroup
	statuses := make([]string, n)
	for i := range n {
		wg.Go(func() { statuses[i], _ = h.httpGet("web", "198.51.100.10:80", "www.example.com") })
	}
	time.Sleep(100 * time.Millisecond) // the burst is through, the rest wait
	if status, _ := h.httpGet("strict", "198.51.100.10:80", "www.example.com"); status != "HTTP/1.1 200 OK" {
		t.Fatalf("unpaced tenant: %q", status)
	}
	other := time.Since(t0)
	wg.Wait()
	all := time.Since(t0)
	for i, s := range statuses {
		if s != "HTTP/1.1 200 OK" {
			t.Errorf("paced request %d: %q, want served", i, s)
		}
	}
	// A burst of about one second's worth passes at once; the rest are
	// spaced at the rate: at least (n - burst - one token per idle accept
	// loop) / rate.
	if min := time.Duration(n-rate-2) * time.Second / rate; all < min {
		t.Errorf("%d requests at %d/s took %v, want at least %v", n, rate, all, min)
	}
	if other >= all {
		t.Errorf("the unpaced tenant was served after %v, not before the paced batch ended (%v)", other, all)
	}
	if got := testutil.ToFloat64(h.srv.metrics.paced.WithLabelValues("web")); got == 0 {
		t.Error("egressfw_connections_paced_total{tenant=web} is 0")
	}
	t.Logf("%d paced requests in %v; the other tenant served after %v", n, all.Round(time.Millisecond), other.Round(time.Millisecond))
}

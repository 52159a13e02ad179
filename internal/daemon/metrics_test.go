package daemon

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsRegistry: the registry the daemon serves holds its own series
// and the data path's (internal/proxy registers with it). The data path's
// counts are checked in internal/proxy (TestMetricsCountDecisions).
func TestMetricsRegistry(t *testing.T) {
	h := newApplyHarness(t)
	h.request(h.addr(h.d.gen.Load(), "web"), "www.example.com")
	h.d.metrics.reloads.WithLabelValues("ok").Inc()
	for _, name := range []string{"egressfw_connections_total", "egressfw_connections_active", "egressfw_bytes_total",
		"egressfw_dns_duration_seconds", "egressfw_connect_duration_seconds", "egressfw_peek_duration_seconds",
		"egressfw_build_info", "egressfw_tenants", "egressfw_reloads_total"} {
		if n, err := testutil.GatherAndCount(h.d.metrics.reg, name); err != nil || n == 0 {
			t.Errorf("metric %s not exported (%d series, %v)", name, n, err)
		}
	}
}

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

// TestMetricsStartAtZero: the daemon's counters of known results are
// exported at 0 from the start, so the first restore or failed reload is an
// increase.
func TestMetricsStartAtZero(t *testing.T) {
	m := newMetrics("test")
	for name, want := range map[string]int{"egressfw_ruleset_restored_total": 2, "egressfw_reloads_total": 2,
		"egressfw_rule_applications_total": 2, "egressfw_cgroup_updates_total": 3} {
		if n, err := testutil.GatherAndCount(m.reg, name); err != nil || n != want {
			t.Errorf("%s: %d series (%v), want %d at 0", name, n, err, want)
		}
	}
}

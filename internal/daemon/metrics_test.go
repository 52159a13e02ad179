package daemon

import (
	"strings"
	"testing"
)

// TestMetricsRegistry: the registry the daemon serves holds its own series
// and the data path's (internal/proxy registers with it). The data path's
// counts are checked in internal/proxy (TestMetricsCountDecisions).
func TestMetricsRegistry(t *testing.T) {
	h := newApplyHarness(t)
	h.request(h.addr(h.d.gen.Load(), "web"), "www.example.com")
	h.d.metrics.reloads.WithLabelValues("ok").Inc()
	families, err := h.d.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"egressfw_connections_total", "egressfw_connections_active", "egressfw_bytes_total",
		"egressfw_dns_duration_seconds", "egressfw_connect_duration_seconds", "egressfw_peek_duration_seconds",
		"egressfw_build_info", "egressfw_tenants", "egressfw_reloads_total"} {
		if !strings.Contains(all, want) {
			t.Errorf("metric %s not exported; have %s", want, all)
		}
	}
}

package proxy

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsCountDecisions(t *testing.T) {
	h := newHarness(t, "")
	h.httpGet("web", "198.51.100.10:80", "www.example.com")
	h.httpGet("web", "10.20.0.10:80", "bi-tool.example.com")
	h.waitLog(map[string]any{"reason": "internal_address"})
	h.waitLog(map[string]any{"reason": "allowed"})
	m := h.srv.metrics
	if got := testutil.ToFloat64(m.conns.WithLabelValues("web", "allow", "allowed")); got != 1 {
		t.Errorf("allowed connections = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.conns.WithLabelValues("web", "deny", "internal_address")); got != 1 {
		t.Errorf("denied connections = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.bytes.WithLabelValues("web", "downstream")); got == 0 {
		t.Error("no downstream bytes counted for the allowed request")
	}
	families, err := h.reg.Gather()
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
		"egressfw_tenants"} {
		if !strings.Contains(all, want) {
			t.Errorf("metric %s not exported; have %s", want, all)
		}
	}
}

// TestMetricsStartAtZero: a tenant's refusal and pacing series, and its open
// connections, are exported at 0 once it is installed, so a dashboard's
// increase() sees the first one.
func TestMetricsStartAtZero(t *testing.T) {
	h := newHarness(t, "")
	for _, name := range []string{"egressfw_connections_rejected_total", "egressfw_connections_paced_total", "egressfw_connections_active"} {
		// 3 tenants; rejected has 4 limits each.
		want := 3
		if name == "egressfw_connections_rejected_total" {
			want = 3 * len(rejectLimits)
		}
		if n, err := testutil.GatherAndCount(h.reg, name); err != nil || n != want {
			t.Errorf("%s: %d series (%v), want %d", name, n, err, want)
		}
	}
	if v := testutil.ToFloat64(h.srv.metrics.rejected.WithLabelValues("web", "tenant_peek")); v != 0 {
		t.Errorf("rejected{web, tenant_peek} = %v, want 0", v)
	}
}

package proxy

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/tcptest"
)

const containersTenant = `
[[tenant]]
name = "containers"
interfaces = ["docker0", "br-*"]
source_cidrs = ["172.17.0.0/16"]
`

// TestForwardedConnections runs REDIRECTed connections of a forwarded
// tenant through the data path: the original destination comes from the
// NAT record, the tenant from the listener, and the log line and metrics
// name the tenant, source and ingress interface. The host's own addresses
// (the bridge gateway) are internal; a redirected connection without a NAT
// record is refused.
func TestForwardedConnections(t *testing.T) {
	h := newHarness(t, containersTenant)
	// The harness client reaches the (wildcard) listener on loopback; let
	// that stand for the bridge address the kernel redirected to.
	lo4, lo6, gw := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("172.17.0.1")
	h.srv.SetHostAddrs([]netip.Prefix{netip.PrefixFrom(gw, 32), netip.PrefixFrom(lo4, 32), netip.PrefixFrom(lo6, 128)},
		map[netip.Addr]string{lo4: "docker0", lo6: "docker0", gw: "docker0"})
	tests := []struct {
		name, orig, host   string
		wantStatus, reason string
		wantBody           string
		wantDetail         string
	}{
		{"public site by name", "198.51.100.10:80", "www.example.com", "HTTP/1.1 200 OK", "allowed", "hello from www.example.com", ""},
		{"bridge gateway", "172.17.0.1:80", "172.17.0.1", "HTTP/1.1 403 Forbidden", "internal_address", "", "address of this host"},
		{"split-horizon name", "198.51.100.10:80", "bi-tool.example.com", "HTTP/1.1 403 Forbidden", "internal_address", "", ""},
		{"metadata", "169.254.169.254:80", "169.254.169.254", "HTTP/1.1 403 Forbidden", "internal_address", "", "link-local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.httpGet("containers", tc.orig, tc.host)
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %q %q, want %q %q", status, body, tc.wantStatus, tc.wantBody)
			}
			want := map[string]any{"tenant": "containers", "orig_dst": tc.orig, "iif": "docker0"}
			want["reason"] = tc.reason
			m := h.waitLog(want)
			if !strings.Contains(m["detail"].(string), tc.wantDetail) {
				t.Errorf("log detail %q does not say %q", m["detail"], tc.wantDetail)
			}
			if src := netip.MustParseAddrPort(m["src"].(string)); !src.Addr().IsLoopback() {
				t.Errorf("log src = %v, want the client's address", m["src"])
			}
		})
	}
	if n := h.internal.Hits.Load(); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0", n)
	}
	m := h.srv.metrics
	if got := testutil.ToFloat64(m.forwarded.WithLabelValues("containers", "docker0", "allow")); got != 1 {
		t.Errorf("forwarded allowed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.forwarded.WithLabelValues("containers", "docker0", "deny")); got != 3 {
		t.Errorf("forwarded denied = %v, want 3", got)
	}

	t.Run("no NAT record", func(t *testing.T) {
		h.kernel.NoNAT.Store(true)
		defer h.kernel.NoNAT.Store(false)
		// The reset may already come while connecting.
		if c, err := net.DialTimeout("tcp", h.addrs["containers"][0], 2*time.Second); err == nil {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatal("connection without a NAT record was served")
			}
		}
		h.waitLog(map[string]any{"tenant": "containers", "reason": "no_original_destination", "decision": "deny"})
	})
	t.Run("local tenants unchanged", func(t *testing.T) {
		h.httpGet("web", "198.51.100.10:80", "www.example.com")
		for _, l := range h.logLines() {
			if l["tenant"] == "web" && l["iif"] != nil {
				t.Errorf("local tenant's log line names an interface: %v", l)
			}
		}
	})
}

// TestIsRedirected: a connection counts as REDIRECTed only when it arrived
// on a forwarded tenant's listener port itself (TPROXY keeps the original
// destination port, an intercept port).
func TestIsRedirected(t *testing.T) {
	_, sc := tcptest.Pair(t)
	port := sc.LocalAddr().(*net.TCPAddr).AddrPort().Port()
	tests := []struct {
		name string
		t    tenantState
		want bool
	}{
		{"forwarded, listener port", tenantState{forwarded: true, slot: config.Slot{Port: port}}, true},
		{"forwarded, other port (TPROXY)", tenantState{forwarded: true, slot: config.Slot{Port: port + 1}}, false},
		{"local tenant", tenantState{slot: config.Slot{Port: port}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isRedirected(sc, tc.t.forwarded, tc.t.slot.Port); got != tc.want {
				t.Errorf("isRedirected = %v, want %v", got, tc.want)
			}
		})
	}
}

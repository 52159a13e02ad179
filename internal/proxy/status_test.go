package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/status"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStatus: what the data path tells egressfw status, after real
// connections: each tenant in config order with its mode, slot and port, the
// connection it holds open, its last minute by outcome, its denied names
// (would-be denials in report mode) with the reason, most first; the
// resolver cache's hits and misses, also as the cache metric. A tenant
// keeps its counts across a reload.
func TestStatus(t *testing.T) {
	h := newHarness(t, "")
	h.dns.SetTTL(60) // cached: the second lookup of a name is a hit
	for range 2 {
		h.httpGet("web", "198.51.100.10:80", "www.example.com")
	}
	for range 3 {
		h.httpGet("web", "10.20.0.10:80", "bi-tool.example.com")
	}
	h.httpGet("web", "198.51.100.10:80", "x.blocked.example")
	h.httpGet("strict", "198.51.100.10:80", "example.com")
	h.httpGet("audit", "10.20.0.10:80", "bi-tool.example.com")
	// web holds one connection open: a keep-alive request answered.
	c := h.connect("web", "198.51.100.10:80", false)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v %v", resp, err)
	}
	h.waitLog(map[string]any{"tenant": "audit", "decision": "would_deny"})

	// The earlier connections end asynchronously after their responses:
	// wait until only the kept-alive one is open.
	tenants, cache := h.srv.Status(time.Now(), 10)
	for deadline := time.Now().Add(3 * time.Second); tenants[0].Open > 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		tenants, cache = h.srv.Status(time.Now(), 10)
	}
	var got []string
	for _, tn := range tenants {
		got = append(got, fmt.Sprintf("%s %s slot %d port %d open %d: %+v top %s", tn.Name, tn.Mode, tn.Slot, tn.Port, tn.Open,
			tn.LastMinute, topString(tn.TopDenied)))
	}
	want := []string{
		"web enforce slot 1 port 15001 open 1: {Connections:7 Denied:4 Reported:0 Failed:0} top bi-tool.example.com 3 deny internal_address, x.blocked.example 1 deny denied_domain",
		"strict enforce slot 2 port 15002 open 0: {Connections:1 Denied:1 Reported:0 Failed:0} top example.com 1 deny not_allowed_domain",
		"audit report slot 3 port 15003 open 0: {Connections:1 Denied:0 Reported:1 Failed:0} top bi-tool.example.com 1 would_deny internal_address",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Status:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Lookups: www (miss, hit, hit), bi-tool (miss, hit, hit, hit: the
	// audit tenant's too); the deny and allow lists need none.
	if cache.Hits != 5 || cache.Misses != 2 {
		t.Errorf("cache %+v, want 5 hits and 2 misses", cache)
	}
	if n := testutil.ToFloat64(h.srv.metrics.conns.WithLabelValues("web", "deny", "internal_address")); n != 3 {
		t.Errorf("connections metric %v, want 3", n)
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP egressfw_dns_cache_lookups_total Lookups of egressfw's resolver, by whether the cache answered (hit) or not (miss).
# TYPE egressfw_dns_cache_lookups_total counter
egressfw_dns_cache_lookups_total{result="hit"} 5
egressfw_dns_cache_lookups_total{result="miss"} 2
`), "egressfw_dns_cache_lookups_total"); err != nil {
		t.Error(err)
	}

	// A reload that keeps web and drops strict: web keeps its counts.
	text := strings.Replace(harnessConfig, "[[tenant]]\nname = \"strict\"\nuids = [1002]\nallow_domains = [\"www.example.com\"]\n", "", 1)
	cfg, err := config.Parse([]byte(fmt.Sprintf(text, h.dns.Addr)), "reload")
	if err != nil {
		t.Fatal(err)
	}
	h.apply(cfg)
	tenants, cache = h.srv.Status(time.Now(), 10)
	if len(tenants) != 2 || tenants[0].Name != "web" || tenants[0].LastMinute.Denied != 4 || tenants[1].Name != "audit" {
		t.Errorf("after the reload: %+v", tenants)
	}
	if cache.Hits != 5 || cache.Misses != 2 {
		t.Errorf("after the reload the cache counts %+v, want them kept", cache)
	}
}

func topString(ns []status.Name) string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s %d %s %s", n.Name, n.Count, n.Decision, n.Reason))
	}
	return strings.Join(out, ", ")
}

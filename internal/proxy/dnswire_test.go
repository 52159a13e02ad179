package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// ask sends one question to the DNS listener of tenant web (at ap, the
// address the proxy asked the kernel for) over network, as a stub
// resolver with EDNS would.
func (h *harness) ask(ap, network, name string, qtype uint16) *dns.Msg {
	h.t.Helper()
	addr := h.kernel.DNSAddr(ap)
	if addr == "" {
		h.t.Fatalf("no DNS listener was opened for %s", ap)
	}
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		h.t.Fatalf("%s %s over %s: %v", name, dns.Type(qtype), network, err)
	}
	return r
}

// dnsLines returns the decoded "dns" log lines.
func (h *harness) dnsLines() []map[string]any {
	var out []map[string]any
	for _, line := range bytes.Split(h.logs.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == "dns" {
			out = append(out, m)
		}
	}
	return out
}

// TestDNSListener: tenant web's DNS listeners, on 127.0.0.1 and ::1 at its
// slot's DNS port, answer over UDP and TCP; a refusal is one log line
// (tenant, source, name, type, reason) and counted, an answer from the
// cache is counted as a cache hit, and what was stripped is counted.
func TestDNSListener(t *testing.T) {
	h := dnsHarness(t)
	h.dns.SetTTL(60) // answers are cached
	slot := h.srv.state.Load().tenants[slotWeb].slot
	for _, ap := range []string{fmt.Sprintf("127.0.0.1:%d", slot.DNSPort), fmt.Sprintf("[::1]:%d", slot.DNSPort)} {
		for _, network := range []string{"udp", "tcp"} {
			r := h.ask(ap, network, "www.example.com", dns.TypeA)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "198.51.100.10" {
				t.Errorf("%s %s: www A: %v", ap, network, r)
			}
			if r := h.ask(ap, network, "bi-tool.example.com", dns.TypeA); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				t.Errorf("%s %s: bi-tool A: %v", ap, network, r)
			}
		}
	}
	ap := fmt.Sprintf("127.0.0.1:%d", slot.DNSPort)
	r := h.ask(ap, "udp", "www.example.com", dns.TypeHTTPS)
	if len(r.Answer) != 1 || r.Answer[0].String() != "www.example.com.\t60\tIN\tHTTPS\t1 . alpn=\"h2\"" {
		t.Errorf("HTTPS: %v", r.Answer)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(h.dnsLines()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := h.dnsLines()
	if len(lines) != 4 {
		t.Fatalf("%d dns log lines, want one per refused query (4): %v", len(lines), lines)
	}
	for _, k := range []string{"tenant", "name", "type", "decision", "mode", "reason", "rcode"} {
		want := map[string]string{"tenant": "web", "name": "bi-tool.example.com", "type": "A", "decision": "deny",
			"mode": "enforce", "reason": "internal_address", "rcode": "NXDOMAIN"}[k]
		if got := fmt.Sprint(lines[0][k]); got != want {
			t.Errorf("log %s = %q, want %q (%v)", k, got, want, lines[0])
		}
	}
	if src := fmt.Sprint(lines[0]["src"]); len(src) < len("127.0.0.1:1") || src[:10] != "127.0.0.1:" {
		t.Errorf("log src = %q", src)
	}
	m := h.srv.metrics.dns
	// Each query is counted by the observer after its reply is sent: the
	// last (HTTPS) one may still be on its way.
	answered := m.queries.WithLabelValues("web", "NOERROR", "allowed")
	for deadline := time.Now().Add(3 * time.Second); testutil.ToFloat64(answered) < 5 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"answered", testutil.ToFloat64(m.queries.WithLabelValues("web", "NOERROR", "allowed")), 5},
		{"refused", testutil.ToFloat64(m.queries.WithLabelValues("web", "NXDOMAIN", "internal_address")), 4},
		{"refusals", testutil.ToFloat64(m.refused.WithLabelValues("web", "deny", "internal_address")), 4},
		{"cache hits (every A query but the first of each name)", testutil.ToFloat64(m.cacheHits.WithLabelValues("web")), 6},
		{"ech stripped", testutil.ToFloat64(m.stripped.WithLabelValues("web", "ech")), 1},
		{"h3 stripped", testutil.ToFloat64(m.stripped.WithLabelValues("web", "alpn")), 1},
		{"hints stripped", testutil.ToFloat64(m.stripped.WithLabelValues("web", "hints")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestDNSRefusalsRateLimited: a tenant repeating a refused query logs
// through the connection denials' limiter: the first burst of lines, the
// rest counted as suppressed (and every refusal still in the metrics), so
// a tenant asking the same refused name in a loop cannot flood the log.
func TestDNSRefusalsRateLimited(t *testing.T) {
	h := dnsHarness(t)
	h.srv.denials.SetLimits(2, time.Hour)
	ap := fmt.Sprintf("127.0.0.1:%d", h.srv.state.Load().tenants[slotWeb].slot.DNSPort)
	const n = 6
	for range n {
		if r := h.ask(ap, "udp", "bi-tool.example.com", dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Fatalf("bi-tool A: %v", r)
		}
	}
	refused := h.srv.metrics.dns.refused.WithLabelValues("web", "deny", "internal_address")
	// The observer runs after each reply is sent, so one query's line may
	// still be being written when a later query is counted: wait for all.
	settled := func() bool {
		return testutil.ToFloat64(refused) >= n && testutil.ToFloat64(h.srv.metrics.suppressed) >= n-2 && len(h.dnsLines()) >= 2
	}
	for deadline := time.Now().Add(3 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(refused); got != n {
		t.Errorf("refusals counted: %v, want %d", got, n)
	}
	if lines := h.dnsLines(); len(lines) != 2 {
		t.Errorf("%d dns log lines, want the burst of 2: %v", len(lines), lines)
	}
	if got := testutil.ToFloat64(h.srv.metrics.suppressed); got != n-2 {
		t.Errorf("suppressed: %v, want %d", got, n-2)
	}
}

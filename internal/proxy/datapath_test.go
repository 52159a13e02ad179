package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPDecisions(t *testing.T) {
	h := newHarness(t, "")
	tests := []struct {
		name, tenant, orig, host string
		wantStatus, wantBody     string
		notInBody                string
		wantReason               string
	}{
		{name: "public name allowed", tenant: "web", orig: "198.51.100.10:80", host: "www.example.com",
			wantStatus: "HTTP/1.1 200 OK", wantBody: "hello from www.example.com", wantReason: "allowed"},
		{name: "public name over ipv6", tenant: "web", orig: "[2001:db8::10]:80", host: "www.example.com",
			wantStatus: "HTTP/1.1 200 OK", wantBody: "hello from www.example.com", wantReason: "allowed"},
		{name: "split-horizon internal name", tenant: "web", orig: "10.20.0.10:80", host: "bi-tool.example.com",
			wantStatus: "HTTP/1.1 403 Forbidden", wantBody: `"bi-tool.example.com" is an internal address`,
			notInBody: "10.20.0.10", wantReason: "internal_address"},
		{name: "internal ip literal", tenant: "web", orig: "10.20.0.10:80", host: "10.20.0.10",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "internal_address"},
		{name: "inet_aton spelling of internal ip", tenant: "web", orig: "10.20.0.10:80", host: "0x0a.0x14.0.012",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "internal_address"},
		{name: "metadata by name", tenant: "web", orig: "169.254.169.254:80", host: "metadata.example.com",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "internal_address"},
		{name: "metadata literal", tenant: "web", orig: "169.254.169.254:80", host: "169.254.169.254",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "internal_address"},
		{name: "mixed public and internal answers", tenant: "web", orig: "198.51.100.10:80", host: "mixed.example.com",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "internal_address"},
		{name: "ipv4-mapped internal answer", tenant: "web", orig: "198.51.100.10:80", host: "mapped.example.com",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "internal_address"},
		{name: "host points public name at internal ip", tenant: "web", orig: "10.20.0.10:80", host: "www.example.com",
			wantStatus: "HTTP/1.1 200 OK", wantBody: "hello from www.example.com", wantReason: "allowed"},
		{name: "deny list", tenant: "web", orig: "198.51.100.10:80", host: "x.blocked.example",
			wantStatus: "HTTP/1.1 403 Forbidden", wantBody: "deny list", wantReason: "denied_domain"},
		{name: "not on allow list", tenant: "strict", orig: "198.51.100.10:80", host: "example.com",
			wantStatus: "HTTP/1.1 403 Forbidden", wantBody: "allow list", wantReason: "not_allowed_domain"},
		{name: "literal for non-star tenant", tenant: "strict", orig: "198.51.100.10:80", host: "198.51.100.10",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "literal_not_allowed"},
		{name: "allowed internal service wrong port", tenant: "web", orig: "10.20.0.20:80", host: "wiki.example.com",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "internal_port"},
		{name: "host port mismatch", tenant: "web", orig: "198.51.100.10:80", host: "www.example.com:8080",
			wantStatus: "HTTP/1.1 403 Forbidden", wantReason: "port_mismatch"},
		{name: "nxdomain", tenant: "web", orig: "198.51.100.10:80", host: "nope.example.com",
			wantStatus: "HTTP/1.1 403 Forbidden", wantBody: "does not exist", wantReason: "dns_nxdomain"},
		{name: "upstream refused", tenant: "web", orig: "198.51.100.30:80", host: "refused.example.com",
			wantStatus: "HTTP/1.1 502 Bad Gateway", wantReason: "upstream_refused"},
		{name: "report mode lets internal through", tenant: "audit", orig: "10.20.0.10:80", host: "bi-tool.example.com",
			wantStatus: "HTTP/1.1 200 OK", wantBody: "internal", wantReason: "internal_address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.httpGet(tc.tenant, tc.orig, tc.host)
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %q %q, want %q with body containing %q", status, body, tc.wantStatus, tc.wantBody)
			}
			if tc.notInBody != "" && strings.Contains(body, tc.notInBody) {
				t.Fatalf("response leaks %q to the tenant: %q", tc.notInBody, body)
			}
			h.waitLog(map[string]any{"tenant": tc.tenant, "orig_dst": tc.orig, "reason": tc.wantReason})
		})
	}
	// Only the report-mode tenant ever reached an internal service.
	if got := h.internal.Hits.Load(); got != 1 {
		t.Fatalf("internal services were reached %d times, want 1 (the report-mode tenant)", got)
	}
	if n := h.dialCount("10.20.0.10:80"); n != 1 {
		t.Fatalf("10.20.0.10:80 dialled %d times, want 1 (report mode only)", n)
	}
}

func TestLogLineNamesEverything(t *testing.T) {
	h := newHarness(t, "")
	h.httpGet("web", "10.20.0.10:80", "bi-tool.example.com")
	m := h.waitLog(map[string]any{"reason": "internal_address"})
	for k, want := range map[string]string{"tenant": "web", "name": "bi-tool.example.com", "orig_dst": "10.20.0.10:80",
		"resolved": "10.20.0.10", "decision": "deny", "mode": "enforce", "proto": "http"} {
		if fmt.Sprint(m[k]) != want {
			t.Errorf("log %s = %v, want %q", k, m[k], want)
		}
	}
	for _, k := range []string{"src", "detail", "peek_us", "dns_us", "connect_us", "total_us", "bytes_up", "bytes_down"} {
		if _, ok := m[k]; !ok {
			t.Errorf("log line lacks %q: %v", k, m)
		}
	}
	if !strings.Contains(fmt.Sprint(m["detail"]), "private-use") {
		t.Errorf("detail %q does not name the registry entry", m["detail"])
	}
}

func TestTLSDecisions(t *testing.T) {
	h := newHarness(t, "")
	handshake := func(tenant, orig, sni string, v6 bool) error {
		c := h.connect(tenant, orig, v6)
		tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		defer tc.Close()
		if err := tc.Handshake(); err != nil {
			return err
		}
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni)
		b, err := io.ReadAll(tc)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "tls hello from "+sni) {
			return fmt.Errorf("unexpected response %q", b)
		}
		return nil
	}
	tests := []struct {
		name, tenant, orig, sni string
		v6                      bool
		wantErr                 string // "" means success
	}{
		{"public sni allowed", "web", "198.51.100.10:443", "www.example.com", false, ""},
		{"public sni over ipv6", "web", "[2001:db8::10]:443", "www.example.com", true, ""},
		{"sni spoof: public sni at internal ip dials the public ip", "web", "10.20.0.10:443", "www.example.com", false, ""},
		{"internal sni denied with access_denied", "web", "10.20.0.10:443", "bi-tool.example.com", false, "access denied"},
		// The stand-in internal service speaks plain HTTP: reaching it breaks the handshake.
		{"allowed internal service", "web", "10.20.0.20:443", "wiki.example.com", false, "does not look like a TLS handshake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(tc.tenant, tc.orig, tc.sni, tc.v6)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if n := h.dialCount("10.20.0.10:443"); n != 0 {
		t.Fatalf("the internal address was dialled %d times", n)
	}
	if n := h.dialCount("10.20.0.20:443"); n != 1 {
		t.Fatalf("the allowed internal service was dialled %d times, want 1", n)
	}
}

func TestTLSWithoutSNIGetsUnrecognizedName(t *testing.T) {
	h := newHarness(t, "")
	c := h.connect("web", "10.20.0.10:443", false)
	// A ClientHello without server_name (Go omits it for IP ServerNames).
	tc := tls.Client(c, &tls.Config{ServerName: "10.20.0.10", InsecureSkipVerify: true})
	err := tc.Handshake()
	if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Fatalf("handshake error = %v, want unrecognized name alert", err)
	}
	h.waitLog(map[string]any{"proto": "tls", "reason": "internal_address"})
}

func TestUnknownProtocolIsReset(t *testing.T) {
	h := newHarness(t, "")
	c := h.connect("web", "198.51.100.10:443", false)
	_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
	_, err := io.ReadAll(c)
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read after junk = %v, want connection reset", err)
	}
	h.waitLog(map[string]any{"reason": "unknown_protocol"})
}

func TestRawHTTPTricks(t *testing.T) {
	h := newHarness(t, "")
	tests := []struct{ name, req, reason string }{
		{"two host headers", "GET / HTTP/1.1\r\nHost: www.example.com\r\nHost: bi-tool.example.com\r\n\r\n", "malformed"},
		{"absolute-form mismatch", "GET http://bi-tool.example.com/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n", "malformed"},
		{"connect to internal", "CONNECT bi-tool.example.com:80 HTTP/1.1\r\nHost: bi-tool.example.com:80\r\n\r\n", "connect_method"},
		{"no host", "GET / HTTP/1.0\r\n\r\n", "no_name"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: www.example.com\r\nX: a\r\n b\r\n\r\n", "malformed"},
		{"h2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2_prior_knowledge"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.connect("web", "10.20.0.10:80", false)
			_, _ = io.WriteString(c, tc.req)
			out, _ := io.ReadAll(c)
			if !bytes.HasPrefix(out, []byte("HTTP/1.1 403 Forbidden")) {
				t.Fatalf("response %q, want 403", out)
			}
			h.waitLog(map[string]any{"reason": tc.reason})
		})
	}
	if n := h.internal.Hits.Load(); n != 0 {
		t.Fatalf("internal service reached %d times", n)
	}
}

func TestDNSRebindingNeverDialsInternal(t *testing.T) {
	h := newHarness(t, "")
	var aQueries atomic.Int64
	h.dns.SetFunc("rebind.example.com", func(qtype uint16, _ int) ([]netip.Addr, bool) {
		if qtype != 1 { // A only
			return nil, true
		}
		if aQueries.Add(1)%2 == 0 {
			return []netip.Addr{netip.MustParseAddr("10.20.0.10")}, true
		}
		return []netip.Addr{netip.MustParseAddr("198.51.100.10")}, true
	})
	allowed, denied := 0, 0
	for i := 0; i < 60; i++ {
		status, _ := h.httpGet("web", "198.51.100.10:80", "rebind.example.com")
		switch status {
		case "HTTP/1.1 200 OK":
			allowed++
		case "HTTP/1.1 403 Forbidden":
			denied++
		default:
			t.Fatalf("request %d: status %q", i, status)
		}
	}
	if allowed == 0 || denied == 0 {
		t.Fatalf("allowed %d, denied %d: the server did not alternate as intended", allowed, denied)
	}
	if n := h.internal.Hits.Load() + h.dialCount("10.20.0.10:80"); n != 0 {
		t.Fatalf("rebinding reached the internal address %d times", n)
	}
	t.Logf("60 requests: %d allowed (public answer), %d denied (internal answer), 0 internal dials", allowed, denied)
}

func TestPeekTimeoutAndCaps(t *testing.T) {
	h := newHarness(t, "[limits]\nmax_connections_per_tenant = 2\nmax_peeking = 3\nmax_peeking_per_tenant = 3\n")
	// Two silent connections fill the tenant's cap...
	idle := []net.Conn{h.connect("web", "198.51.100.10:443", false), h.connect("web", "198.51.100.10:443", false)}
	time.Sleep(50 * time.Millisecond)
	// ...so the third is refused at once, while another tenant is unaffected.
	if err := h.refusedAtOnce("web", "198.51.100.10:443"); err != nil {
		t.Fatalf("third connection: %v", err)
	}
	if status, _ := h.httpGet("strict", "198.51.100.10:80", "www.example.com"); status != "HTTP/1.1 200 OK" {
		t.Fatalf("other tenant got %q while web was at its cap", status)
	}
	h.waitLog(map[string]any{"tenant": "web", "reason": "over_limit"})
	// The silent ones are cut at the peek timeout (300ms), not held forever.
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a silent connection got data")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a silent connection was still open 2s later (peek timeout 300ms)")
		}
	}
	h.waitLog(map[string]any{"tenant": "web", "reason": "peek_timeout"})
}

// TestPeekShareIsPerTenant: one tenant holding silent connections uses up
// only its own share of the peek slots, never the global cap the other
// tenants need.
func TestPeekShareIsPerTenant(t *testing.T) {
	h := newHarness(t, "[limits]\nmax_peeking = 4\nmax_peeking_per_tenant = 2\n")
	for range 2 {
		h.connect("web", "198.51.100.10:443", false) // silent: stays in the peek phase
	}
	time.Sleep(50 * time.Millisecond)
	if err := h.refusedAtOnce("web", "198.51.100.10:443"); err != nil {
		t.Fatalf("a third silent connection of the same tenant: %v", err)
	}
	h.waitLog(map[string]any{"tenant": "web", "reason": "over_limit"})
	if status, _ := h.httpGet("strict", "198.51.100.10:80", "www.example.com"); status != "HTTP/1.1 200 OK" {
		t.Fatalf("another tenant got %q while web held its whole peek share", status)
	}
}

// TestOneLookupPerConnection: the name is resolved once, and the dial uses
// only what that lookup returned; nothing on the data path asks DNS again
// after validation. With caching off (min_ttl 0, TTL 0 answers) an allowed
// request costs exactly one A and one AAAA query, a denied name none.
func TestOneLookupPerConnection(t *testing.T) {
	h := newHarness(t, "")
	before := h.dns.Queries()
	if status, _ := h.httpGet("web", "198.51.100.10:80", "www.example.com"); status != "HTTP/1.1 200 OK" {
		t.Fatalf("status %q", status)
	}
	h.waitLog(map[string]any{"reason": "allowed"})
	if n := h.dns.Queries() - before; n != 2 {
		t.Fatalf("one allowed connection made %d DNS queries, want 2 (A and AAAA once)", n)
	}
	before = h.dns.Queries()
	h.httpGet("web", "198.51.100.10:80", "x.blocked.example")
	h.waitLog(map[string]any{"reason": "denied_domain"})
	if n := h.dns.Queries() - before; n != 0 {
		t.Fatalf("a name on the deny list was sent to DNS (%d queries)", n)
	}
}

package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
)

// denyCase is one refusal a tenant can provoke: bytes sent to orig as
// tenant, and the reason the log must keep.
type denyCase struct {
	name, tenant, orig, send, reason string
}

// httpDenials are refusals of plain HTTP requests, one per kind of reason.
var httpDenials = []denyCase{
	{"internal name", "web", "10.20.0.10:80", get("bi-tool.example.com"), "internal_address"},
	{"internal name at a public address", "web", "198.51.100.10:80", get("bi-tool.example.com"), "internal_address"},
	{"name that does not exist", "web", "198.51.100.10:80", get("nope.example.com"), "dns_nxdomain"},
	{"name without addresses", "web", "198.51.100.10:80", get("empty.example.com"), "dns_no_addresses"},
	{"name whose DNS times out", "web", "198.51.100.10:80", get("slow.example.com"), "dns_timeout"},
	{"metadata by name", "web", "169.254.169.254:80", get("metadata.example.com"), "internal_address"},
	{"internal literal", "web", "10.20.0.10:80", get("10.20.0.10"), "internal_address"},
	{"allowed internal name on another port", "web", "10.20.0.20:80", get("wiki.example.com"), "internal_port"},
	{"deny list", "web", "198.51.100.10:80", get("x.blocked.example"), "denied_domain"},
	{"alias of a deny-listed name", "web", "198.51.100.10:80", get("www.tracked.example"), "denied_domain"},
	{"alias of an internal name", "web", "198.51.100.10:80", get("alias.example.com"), "internal_address"},
	{"not on the allow list", "strict", "198.51.100.10:80", get("example.com"), "not_allowed_domain"},
	{"internal name not on the allow list", "strict", "10.20.0.10:80", get("bi-tool.example.com"), "not_allowed_domain"},
	{"literal for a listed tenant", "strict", "198.51.100.10:80", get("198.51.100.10"), "literal_not_allowed"},
	{"host port mismatch", "web", "198.51.100.10:80", get("www.example.com:8080"), "port_mismatch"},
	{"connect", "web", "10.20.0.10:80", "CONNECT bi-tool.example.com:80 HTTP/1.1\r\nHost: bi-tool.example.com:80\r\n\r\n", "connect_method"},
	{"no host", "web", "10.20.0.10:80", "GET / HTTP/1.0\r\n\r\n", "no_name"},
	{"malformed head", "web", "10.20.0.10:80", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "malformed"},
}

// tlsDenials are refusals of TLS ClientHellos (send is the SNI; "" for none).
var tlsDenials = []denyCase{
	{"internal name", "web", "10.20.0.10:443", "bi-tool.example.com", "internal_address"},
	{"name that does not exist", "web", "198.51.100.10:443", "nope.example.com", "dns_nxdomain"},
	{"name whose DNS times out", "web", "198.51.100.10:443", "slow.example.com", "dns_timeout"},
	{"deny list", "web", "198.51.100.10:443", "x.blocked.example", "denied_domain"},
	{"alias of an internal name", "web", "198.51.100.10:443", "alias.example.com", "internal_address"},
	{"not on the allow list", "strict", "198.51.100.10:443", "example.com", "not_allowed_domain"},
	{"no server name to an internal address", "web", "10.20.0.10:443", "", "internal_address"},
}

func get(host string) string {
	return "GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: probe\r\n\r\n"
}

// minimalDenyResponse is the whole answer to every refused HTTP request
// under deny_detail = "minimal".
const minimalDenyResponse = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n" +
	"Connection: close\r\nCache-Control: no-store\r\n\r\negressfw denied this request\n"

// accessDenied is a fatal access_denied alert record.
const accessDenied = "\x15\x03\x03\x00\x02\x02\x31"

// TestMinimalDenialsAreIdentical: with deny_detail = "minimal" (the
// default) every refusal gets byte-identical bytes back — status, headers,
// length, body, TLS alert — so a tenant cannot tell a split-horizon name
// from one that does not resolve or is not allowed; the log keeps every
// reason. With "full" the same refusals are told apart (the test can fail).
func TestMinimalDenialsAreIdentical(t *testing.T) {
	for _, mode := range []string{config.DenyDetailMinimal, config.DenyDetailFull} {
		t.Run(mode, func(t *testing.T) {
			h := denyHarness(t, mode)
			for _, set := range []struct {
				proto string
				cases []denyCase
				send  func(t *testing.T, c denyCase) []byte
				want  string
			}{
				{"http", httpDenials, func(_ *testing.T, c denyCase) []byte { return []byte(c.send) }, minimalDenyResponse},
				{"tls", tlsDenials, func(t *testing.T, c denyCase) []byte { return clientHello(t, c.send) }, accessDenied},
			} {
				got := map[string][]string{} // response -> cases
				for _, c := range set.cases {
					conn := h.connect(c.tenant, c.orig, false)
					_, _ = conn.Write(set.send(t, c))
					resp, _ := io.ReadAll(conn)
					conn.Close()
					got[string(resp)] = append(got[string(resp)], c.name)
					h.waitLog(map[string]any{"tenant": c.tenant, "orig_dst": c.orig, "proto": set.proto, "decision": "deny", "reason": c.reason})
				}
				switch {
				case mode == config.DenyDetailMinimal && (len(got) != 1 || got[set.want] == nil):
					t.Errorf("%s: %d different answers to %d refusals, want one, %q:\n%q", set.proto, len(got), len(set.cases), set.want, got)
				case mode == config.DenyDetailFull && len(got) < 2:
					t.Errorf("%s: full detail gave one answer to every refusal: %q", set.proto, got)
				}
			}
			if n := h.internal.Hits.Load(); n != 0 {
				t.Fatalf("internal services reached %d times", n)
			}
		})
	}
}

// denyHarness is a harness with deny_detail = mode, a name without
// addresses, one whose DNS never answers in time (dns.timeout 200ms) and
// aliases (CNAME) of a deny-listed and of an internal name.
func denyHarness(t *testing.T, mode string) *harness {
	h := newHarness(t, "")
	h.dns.SetFunc("empty.example.com", func(uint16, int) ([]netip.Addr, bool) { return nil, true })
	h.dns.SetFunc("slow.example.com", func(uint16, int) ([]netip.Addr, bool) {
		time.Sleep(400 * time.Millisecond)
		return nil, false
	})
	h.dns.SetCNAME("www.tracked.example", "t.blocked.example") // web denies *.blocked.example
	h.dns.Set("t.blocked.example", "198.51.100.10")
	h.dns.SetCNAME("alias.example.com", "bi-tool.example.com")
	cfg := *h.srv.state.Load().cfg
	cfg.Listener.DenyDetail = mode
	cfg.DNS.Timeout = config.D(200 * time.Millisecond)
	h.apply(&cfg)
	return h
}

// clientHello returns the first flight of a Go TLS client for sni (no
// server_name extension when sni is "").
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true}
	go func() {
		_ = tls.Client(a, cfg).Handshake()
		a.Close()
	}()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := b.Read(buf) // the ClientHello is one write
	if err != nil {
		t.Fatalf("capture ClientHello: %v", err)
	}
	return buf[:n]
}

package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/tcptest"
)

// reloadText is the h1 harness's config after edit.
func reloadText(h *harness, edit func(string) string) *config.Config {
	h.t.Helper()
	text := edit(fmt.Sprintf(harnessConfig, h.dns.Addr) + h1Config)
	cfg, err := config.Parse([]byte(text), "reload")
	if err != nil {
		h.t.Fatalf("reload config: %v\n%s", err, text)
	}
	return cfg
}

// closedSoon reports whether the proxy closes c within a second, with
// nothing sent on it.
func closedSoon(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 1))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestReloadClosesOpenConnectionsItRefuses: a reload judges every open
// connection again, on what it was judged on when it opened (its name,
// that name's answer, the address it is connected to), and closes the ones
// the new config refuses at once, with nothing sent on them: a name
// deny-listed, a tenant removed, report mode turned to enforce, an
// allow_internal entry taken away. The connection's line says so, and the
// closure is counted. One the new config still allows stays open and
// serves its next request.
func TestReloadClosesOpenConnectionsItRefuses(t *testing.T) {
	h2c := "GET /1 HTTP/1.1\r\nHost: site1.example.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
		"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
	denySite1 := func(c string) string {
		return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "site1.example.test"]`, 1)
	}
	denyShared := func(c string) string {
		return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "shared.example.test"]`, 1)
	}
	enforce := func(c string) string { return strings.Replace(c, `mode = "report"`, `mode = "enforce"`, 1) }
	tests := []struct {
		name, tenant, orig, host string
		first                    string   // the first request, when not a GET of host
		later                    []string // hosts of later requests before the reload
		reload                   func(string) string
		reason                   string // the new config's; "" stays open
	}{
		{name: "a name deny-listed", tenant: "web", orig: "198.51.100.50:80", host: "site1.example.test",
			reload: func(c string) string {
				return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "site1.example.test"]`, 1)
			},
			reason: "denied_domain"},
		{name: "its tenant removed", tenant: "narrow", orig: "198.51.100.50:80", host: "site1.example.test",
			reload: func(c string) string { return c[:strings.Index(c, "[[tenant]]\nname = \"narrow\"")] },
			reason: "tenant_removed"},
		{name: "report mode, at an address the name is not at, turned to enforce", tenant: "audit", orig: "198.51.100.50:80", host: "other.example.test",
			reload: func(c string) string { return strings.Replace(c, `mode = "report"`, `mode = "enforce"`, 1) },
			reason: "not_on_connection"},
		{name: "an allow_internal entry removed", tenant: "intra", orig: "10.20.0.20:80", host: "wiki.example.com",
			reload: func(c string) string {
				return strings.Replace(c, "  host = \"wiki.example.com\"\n  ports = [80]\n", "  host = \"wiki.example.com\"\n  ports = [443]\n", 1)
			},
			reason: "internal_port"},
		{name: "report mode let an IP literal through at another address, turned to enforce", tenant: "audit", orig: "198.51.100.50:80",
			host: "198.51.100.99", reload: enforce, reason: "literal_mismatch"},
		{name: "report mode let a name DNS could not resolve through, turned to enforce", tenant: "audit", orig: "198.51.100.50:80",
			host: "nope.example.test", reload: enforce, reason: "not_on_connection"},
		{name: "report mode let an h2c upgrade through, turned to enforce", tenant: "audit", orig: "198.51.100.50:80",
			host: "site1.example.test", first: h2c, reload: enforce, reason: "h2_prior_knowledge"},
		{name: "a later request's name deny-listed", tenant: "web", orig: "198.51.100.50:80", host: "site1.example.test",
			later: []string{"shared.example.test"}, reload: denyShared, reason: "denied_domain"},
		{name: "the first request's name deny-listed after later ones", tenant: "web", orig: "198.51.100.50:80", host: "site1.example.test",
			later: []string{"shared.example.test"}, reload: denySite1, reason: "denied_domain"},
		{name: "a report-mode one while the tenant stays in report mode", tenant: "audit", orig: "198.51.100.50:80", host: "other.example.test",
			reload: func(c string) string { return c + "[[tenant]]\nname = \"late\"\nuids = [1009]\n" }},
		{name: "an allowed one while another tenant is added", tenant: "web", orig: "198.51.100.50:80", host: "site1.example.test",
			reload: func(c string) string { return c + "[[tenant]]\nname = \"late\"\nuids = [1009]\n" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _ := h1Harness(t)
			c := h.connect(tc.tenant, tc.orig, false)
			first := tc.first
			if first == "" {
				first = reqGET(tc.host, "/1")
			}
			for _, req := range append([]string{first}, mapHosts(tc.later)...) {
				_, _ = io.WriteString(c, req)
				if got := statuses(readResponses(c, "GET")); got != "200" {
					t.Fatalf("%q: %s, want 200", req, got)
				}
			}
			h.apply(reloadText(h, tc.reload))
			if tc.reason == "" {
				if closedSoon(c) {
					t.Fatal("the reload closed a connection its config allows")
				}
				_, _ = io.WriteString(c, reqGET(tc.host, "/2"))
				if got := statuses(readResponses(c, "GET")); got != "200" {
					t.Fatalf("the request after the reload: %s, want 200", got)
				}
				return
			}
			if !closedSoon(c) {
				t.Fatalf("the connection is still open a second after a reload whose config refuses it (%s)", tc.reason)
			}
			l := h.waitLog(map[string]any{"tenant": tc.tenant, "closed_by": "reload"})
			if l["closed_reason"] != tc.reason || l["name"] != tc.host {
				t.Errorf("connection line %v: want closed_reason %s, name %s", l, tc.reason, tc.host)
			}
			if n := testutil.ToFloat64(h.srv.metrics.closed.WithLabelValues(tc.tenant, tc.reason)); n != 1 {
				t.Errorf("egressfw_connections_closed_by_reload_total{%s,%s} = %v, want 1", tc.tenant, tc.reason, n)
			}
		})
	}
}

// TestReloadClosesRefusedTLS: a spliced TLS connection, judged once by its
// SNI, is closed by a reload that deny-lists that name; one to another
// name of the same tenant goes on.
func TestReloadClosesRefusedTLS(t *testing.T) {
	h := newHarness(t, "")
	h.dns.Set("www2.example.com", "198.51.100.10")
	open := func(sni string) *tls.Conn {
		tc := tls.Client(h.connect("web", "198.51.100.10:443", false), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake %s: %v", sni, err)
		}
		return tc
	}
	get := func(tc *tls.Conn, sni string) error {
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", sni)
		_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 4096)
		n, err := tc.Read(b)
		if err == nil && !strings.Contains(string(b[:n]), "tls hello from "+sni) {
			err = fmt.Errorf("response %q", b[:n])
		}
		return err
	}
	denied, kept := open("www.example.com"), open("www2.example.com")
	for sni, tc := range map[string]*tls.Conn{"www.example.com": denied, "www2.example.com": kept} {
		if err := get(tc, sni); err != nil {
			t.Fatalf("before the reload, %s: %v", sni, err)
		}
	}
	text := strings.Replace(fmt.Sprintf(harnessConfig, h.dns.Addr), `deny_domains = ["*.blocked.example"]`,
		`deny_domains = ["*.blocked.example", "www.example.com"]`, 1)
	cfg, err := config.Parse([]byte(text), "reload")
	if err != nil {
		t.Fatal(err)
	}
	h.apply(cfg)
	// Read only: a write first would take the reset's error.
	_ = denied.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := denied.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the connection to the deny-listed name after the reload: %v; want it reset", err)
	}
	if err := get(kept, "www2.example.com"); err != nil {
		t.Errorf("the connection to the other name after the reload: %v", err)
	}
	l := h.waitLog(map[string]any{"name": "www.example.com", "closed_by": "reload"})
	if l["closed_reason"] != "denied_domain" || l["proto"] != "tls" {
		t.Errorf("connection line %v: want closed_reason denied_domain, proto tls", l)
	}
}

// TestLiveConnJudgedDuringReload: a connection judged by the snapshot
// before a reload, whose relay starts after that reload's recheck ran, is
// judged against the running snapshot when it registers, and closed if
// that refuses it.
func TestLiveConnJudgedDuringReload(t *testing.T) {
	h, _, _ := h1Harness(t)
	old := h.srv.state.Load()
	h.apply(reloadText(h, func(c string) string {
		return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "site1.example.test"]`, 1)
	}))
	site := netip.MustParseAddr("198.51.100.50")
	for _, tc := range []struct {
		name   string
		host   string
		closed bool
	}{{"refused now", "site1.example.test", true}, {"allowed now", "shared.example.test", false}} {
		t.Run(tc.name, func(t *testing.T) {
			client, c := tcptest.Pair(t)
			up, server := tcptest.Pair(t)
			rec := &connRecord{tenant: "web", orig: netip.AddrPortFrom(site, 80), dialed: netip.AddrPortFrom(site, 80),
				verdict: policy.Decision{Allow: true, WouldAllow: true, Name: tc.host, Answer: policy.Answer{Addrs: []netip.Addr{site}}}}
			var slot uint32
			for id, ts := range old.tenants {
				if ts.name == "web" {
					slot = id
				}
			}
			h.srv.addLive(rec, c, up, slot, old)
			defer h.srv.removeLive(rec)
			if got := closedSoon(client) && closedSoon(server); got != tc.closed {
				t.Errorf("closed %v, want %v", got, tc.closed)
			}
		})
	}
}

// BenchmarkRecheck10k is the time a reload spends judging 10,000 open
// connections again (none refused), alternating two snapshots.
func BenchmarkRecheck10k(b *testing.B) {
	s := New(Options{Log: slog.New(slog.DiscardHandler)})
	cfg, err := config.Parse([]byte(fmt.Sprintf(harnessConfig, "127.0.0.1:53")), "bench")
	if err != nil {
		b.Fatal(err)
	}
	snaps := [2]*Snapshot{snapshotFor(b, s, cfg), snapshotFor(b, s, cfg)}
	s.Install(snaps[0])
	site := netip.MustParseAddrPort("198.51.100.10:443")
	for i := range 10000 {
		name := fmt.Sprintf("n%d.example.com", i)
		rec := &connRecord{tenant: "web", orig: site, dialed: site,
			verdict: policy.Decision{Allow: true, WouldAllow: true, Name: name, Answer: policy.Answer{Addrs: []netip.Addr{site.Addr()}}}}
		s.addLive(rec, nil, nil, 1, snaps[0])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.recheck(snaps[(i+1)%2])
	}
}

// mapHosts is a GET of each host.
func mapHosts(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, reqGET(h, "/2"))
	}
	return out
}

// TestReloadRechecksANewAnswerOfAName: a later request for the name a
// connection opened with, looked up again after a reload (which clears
// what the connection remembered), may get another answer; the next
// reload judges that answer too. Here the name has become an alias of a
// CDN name, which the second reload deny-lists.
func TestReloadRechecksANewAnswerOfAName(t *testing.T) {
	h, _, _ := h1Harness(t)
	h.dns.SetTTL(0)
	c := h.connect("web", "198.51.100.50:80", false)
	get := func(path string) {
		t.Helper()
		_, _ = io.WriteString(c, reqGET("site1.example.test", path))
		if got := statuses(readResponses(c, "GET")); got != "200" {
			t.Fatalf("request %s: %s, want 200", path, got)
		}
	}
	get("/1")
	h.apply(reloadText(h, func(c string) string { return c + "[[tenant]]\nname = \"late\"\nuids = [1009]\n" }))
	h.dns.SetCNAME("site1.example.test", "edge.cdn.example.test")
	h.dns.Set("edge.cdn.example.test", "198.51.100.50")
	get("/2")
	h.apply(reloadText(h, func(c string) string {
		return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "*.cdn.example.test"]`, 1) +
			"[[tenant]]\nname = \"late\"\nuids = [1009]\n"
	}))
	if !closedSoon(c) {
		t.Fatal("the connection is still open after a reload that deny-lists the alias its name now has")
	}
	l := h.waitLog(map[string]any{"tenant": "web", "closed_by": "reload"})
	if l["closed_reason"] != "denied_domain" {
		t.Errorf("connection line %v: want closed_reason denied_domain", l)
	}
}

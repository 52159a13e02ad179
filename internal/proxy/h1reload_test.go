package proxy

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
)

// TestFollowUpRequestsJudgedByRunningConfig: a later request on a
// kept-alive connection is judged by the config running when it arrives,
// not the one the connection started under. A reload that deny-lists the
// connection's name, removes its tenant or turns report mode into enforce
// refuses the next request; one that opens a name lets it through; one
// that changes nothing else for the tenant changes nothing.
func TestFollowUpRequestsJudgedByRunningConfig(t *testing.T) {
	tests := []struct {
		name, tenant, orig string
		reload             func(cfg string) string // the config text after the reload
		second             string                  // the request after the reload
		want               string                  // statuses of the two requests
		served             int                     // requests the server saw
		reason             string                  // of the second request's log line, when it has one
	}{
		{name: "the connection's name deny-listed", tenant: "web", orig: "198.51.100.50:80",
			reload: func(c string) string {
				return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "site1.example.test"]`, 1)
			},
			second: reqGET("site1.example.test", "/2"), want: "200 403", served: 1, reason: "denied_domain"},
		{name: "its tenant removed", tenant: "narrow", orig: "198.51.100.50:80",
			reload: func(c string) string { return c[:strings.Index(c, "[[tenant]]\nname = \"narrow\"")] },
			second: reqGET("site1.example.test", "/2"), want: "200 403", served: 1, reason: "tenant_removed"},
		{name: "report mode turned to enforce", tenant: "audit", orig: "198.51.100.50:80",
			reload: func(c string) string { return strings.Replace(c, `mode = "report"`, `mode = "enforce"`, 1) },
			second: reqGET("other.example.test", "/2"), want: "200 403", served: 1, reason: "not_on_connection"},
		{name: "an internal host opened", tenant: "intra", orig: "10.20.0.20:80",
			reload: func(c string) string {
				wiki := "  host = \"wiki.example.com\"\n  ports = [80]\n" // intra's entry
				return strings.Replace(c, wiki, wiki+"  [[tenant.allow_internal]]\n  host = \"admin.example.com\"\n  ports = [80]\n", 1)
			},
			second: reqGET("admin.example.com", "/2"), want: "200 200", served: 2},
		{name: "another tenant added", tenant: "web", orig: "198.51.100.50:80",
			reload: func(c string) string { return c + "[[tenant]]\nname = \"late\"\nuids = [1009]\n" },
			second: reqGET("site1.example.test", "/2"), want: "200 200", served: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, site, ingress := h1Harness(t)
			srv := site
			if strings.HasPrefix(tc.orig, "10.") {
				srv = ingress
			}
			first := reqGET("site1.example.test", "/1")
			if tc.tenant == "intra" {
				first = reqGET("wiki.example.com", "/1")
			}
			c := h.connect(tc.tenant, tc.orig, false)
			_, _ = io.WriteString(c, first)
			if got := statuses(readResponses(c, "GET")); got != "200" {
				t.Fatalf("first request: %s, want 200", got)
			}
			text := tc.reload(fmt.Sprintf(harnessConfig, h.dns.Addr) + h1Config)
			cfg, err := config.Parse([]byte(text), "reload")
			if err != nil {
				t.Fatalf("reload config: %v\n%s", err, text)
			}
			h.apply(cfg)
			_, _ = io.WriteString(c, tc.second)
			got := statuses(readResponses(c, "GET"))
			if got = "200 " + got; got != tc.want {
				t.Fatalf("statuses %s, want %s", got, tc.want)
			}
			if n := len(srv.requests()); n != tc.served {
				t.Errorf("the server served %d requests, want %d: %v", n, tc.served, srv.requests())
			}
			if tc.reason != "" {
				l := h.logs.WaitOf(t, "request", "for the second request", func(m map[string]any) bool {
					return m["tenant"] == tc.tenant
				})
				if l["reason"] != tc.reason || l["decision"] != "deny" || l["mode"] != "enforce" {
					t.Errorf("request line %v: want reason %s, decision deny, mode enforce", l, tc.reason)
				}
			}
			if tc.served == 1 {
				if got := srv.received(); got != first {
					t.Errorf("the server received %q, want the first request only, %q", got, first)
				}
			}
		})
	}
}

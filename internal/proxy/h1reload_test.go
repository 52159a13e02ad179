package proxy

import (
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/egressfw/egressfw/internal/policy"
)

// TestFollowUpRequestsJudgedByRunningConfig: a later request on a
// kept-alive connection is judged by the config running when it arrives,
// not the one the connection started under. A reload that deny-lists a
// name the connection has not carried yet (one it carried closes it:
// TestReloadClosesOpenConnectionsItRefuses) or turns report mode into
// enforce refuses the next request for it; one that opens a name lets it
// through; one that changes nothing for the tenant changes nothing.
func TestFollowUpRequestsJudgedByRunningConfig(t *testing.T) {
	tests := []struct {
		name, tenant, orig string
		before             []string                // hosts of the requests before the reload, all served
		reload             func(cfg string) string // the config text after the reload
		second             string                  // the request after the reload
		want               string                  // its status
		reason             string                  // of its log line, when it has one
	}{
		{name: "a name it has not carried deny-listed", tenant: "web", orig: "198.51.100.50:80",
			before: []string{"site1.example.test"},
			reload: func(c string) string {
				return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "shared.example.test"]`, 1)
			},
			second: reqGET("shared.example.test", "/2"), want: "403", reason: "denied_domain"},
		{name: "report mode turned to enforce", tenant: "audit", orig: "198.51.100.50:80",
			before: []string{"site1.example.test"},
			reload: func(c string) string { return strings.Replace(c, `mode = "report"`, `mode = "enforce"`, 1) },
			second: reqGET("other.example.test", "/2"), want: "403", reason: "not_on_connection"},
		{name: "an internal host opened", tenant: "intra", orig: "10.20.0.20:80",
			before: []string{"wiki.example.com"},
			reload: func(c string) string {
				wiki := "  host = \"wiki.example.com\"\n  ports = [80]\n" // intra's entry
				return strings.Replace(c, wiki, wiki+"  [[tenant.allow_internal]]\n  host = \"admin.example.com\"\n  ports = [80]\n", 1)
			},
			second: reqGET("admin.example.com", "/2"), want: "200"},
		{name: "another tenant added", tenant: "web", orig: "198.51.100.50:80",
			before: []string{"site1.example.test", "shared.example.test"},
			reload: func(c string) string { return c + "[[tenant]]\nname = \"late\"\nuids = [1009]\n" },
			second: reqGET("shared.example.test", "/2"), want: "200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, site, ingress := h1Harness(t)
			srv := site
			if strings.HasPrefix(tc.orig, "10.") {
				srv = ingress
			}
			c := h.connect(tc.tenant, tc.orig, false)
			var sent string
			for _, host := range tc.before {
				sent += reqGET(host, "/1")
				_, _ = io.WriteString(c, reqGET(host, "/1"))
				if got := statuses(readResponses(c, "GET")); got != "200" {
					t.Fatalf("request for %s before the reload: %s, want 200", host, got)
				}
			}
			h.apply(reloadText(h, tc.reload))
			_, _ = io.WriteString(c, tc.second)
			if got := statuses(readResponses(c, "GET")); got != tc.want {
				t.Fatalf("the request after the reload: %s, want %s", got, tc.want)
			}
			served := len(tc.before)
			if tc.want == "200" {
				served++
			}
			if n := len(srv.requests()); n != served {
				t.Errorf("the server served %d requests, want %d: %v", n, served, srv.requests())
			}
			if tc.reason != "" {
				l := h.logs.WaitOf(t, "request", "for the second request", func(m map[string]any) bool {
					return m["tenant"] == tc.tenant
				})
				if l["reason"] != tc.reason || l["decision"] != "deny" || l["mode"] != "enforce" {
					t.Errorf("request line %v: want reason %s, decision deny, mode enforce", l, tc.reason)
				}
				if got := srv.received(); got != sent {
					t.Errorf("the server received %q, want the requests before the reload only, %q", got, sent)
				}
			}
		})
	}
}

// TestLaterRequestOvertakenByReload: a later request whose lookup is
// still waiting when a reload installs a config that refuses its name is
// judged again by that config when the lookup returns: the reload's
// recheck could not see the name yet, so the request itself must not go
// through on the old config's decision.
func TestLaterRequestOvertakenByReload(t *testing.T) {
	h, site, _ := h1Harness(t)
	c := h.connect("web", "198.51.100.50:80", false)
	_, _ = io.WriteString(c, reqGET("site1.example.test", "/1"))
	if got := statuses(readResponses(c, "GET")); got != "200" {
		t.Fatalf("first request: %s, want 200", got)
	}
	asked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.dns.SetFunc("slow.example.test", func(qtype uint16, _ int) ([]netip.Addr, bool) {
		once.Do(func() { close(asked) })
		<-release
		if qtype == dns.TypeA {
			return []netip.Addr{netip.MustParseAddr("198.51.100.50")}, true
		}
		return nil, true
	})
	_, _ = io.WriteString(c, reqGET("slow.example.test", "/2"))
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("egressfw never looked the second request's name up")
	}
	h.apply(reloadText(h, func(c string) string {
		return strings.Replace(c, `deny_domains = ["*.blocked.example"]`, `deny_domains = ["*.blocked.example", "slow.example.test"]`, 1)
	}))
	close(release)
	if got := statuses(readResponses(c, "GET")); got != "403" {
		t.Errorf("the request judged across the reload: %q, want 403", got)
	}
	if got, want := site.received(), reqGET("site1.example.test", "/1"); got != want {
		t.Errorf("the server received %q, want the first request only, %q", got, want)
	}
}

// TestFollowRunningSnapshot: a plain-HTTP connection's judge moves to the
// running snapshot: to its tenant of the same slot and name, forgetting
// the names allowed before; when no tenant of that name holds the slot any
// more it reports false, and Request refuses as tenant_removed.
func TestFollowRunningSnapshot(t *testing.T) {
	h, _, _ := h1Harness(t)
	old := h.srv.state.Load()
	var narrow *tenantState
	for _, ts := range old.tenants {
		if ts.name == "narrow" {
			narrow = ts
		}
	}
	rec := &connRecord{tenant: "narrow"}
	j := &h1conn{s: h.srv, st: old, t: narrow, rec: rec}
	j.memo.add("site1.example.test", policy.Answer{}, []byte("site1.example.test"))
	if !j.follow() || j.st != old || j.t != narrow || j.memo.byName("site1.example.test") == nil {
		t.Fatal("follow changed a connection whose snapshot is the running one")
	}
	h.apply(reloadText(h, func(c string) string { return c + "[[tenant]]\nname = \"late\"\nuids = [1009]\n" }))
	cur := h.srv.state.Load()
	if !j.follow() || j.st != cur || j.t != cur.tenants[narrow.slot.ID] || j.memo.byName("site1.example.test") != nil {
		t.Fatalf("after a reload that keeps the tenant: snapshot moved %v, tenant %q, memo kept %v; want moved, narrow, forgotten",
			j.st == cur, j.t.name, j.memo.byName("site1.example.test") != nil)
	}
	h.apply(reloadText(h, func(c string) string { return c[:strings.Index(c, "[[tenant]]\nname = \"narrow\"")] }))
	if j.follow() {
		t.Fatal("follow reported the tenant kept after a reload that removed it")
	}
}

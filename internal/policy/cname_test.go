package policy

import (
	"strings"
	"testing"
)

// TestDecideJudgesCNAMEChain: a name allowed on its own is denied when the
// resolver reached its addresses through a CNAME to a deny-listed name,
// wherever in the chain; allow_domains applies to the name asked for only,
// so an allowed name may still lead through CDN names of any spelling.
func TestDecideJudgesCNAMEChain(t *testing.T) {
	p := testPolicy(t)
	tenants := testTenants(t) // web denies secret.example.org and *.bad.example.org; any denies blocked.example
	tests := []struct {
		name    string
		tenant  string
		aliases []string
		allow   bool
		detail  string
	}{
		{"no chain", "web", nil, true, ""},
		{"chain of allowed and unlisted names", "web", []string{"cdn.example.net", "edge.cdn.example.net"}, true, ""},
		{"last name deny-listed exactly", "web", []string{"cdn.example.net", "secret.example.org"},
			false, `name "shop.example.org" is an alias (CNAME) of "secret.example.org", which is in deny_domains ("secret.example.org")`},
		{"middle name deny-listed by wildcard", "web", []string{"x.bad.example.org", "cdn.example.net"},
			false, `alias (CNAME) of "x.bad.example.org", which is in deny_domains ("*.bad.example.org")`},
		{"wildcard does not cover the apex", "web", []string{"bad.example.org"}, true, ""},
		{"allow-all tenant, denied alias", "any", []string{"blocked.example"}, false, `"blocked.example", which is in deny_domains`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "shop.example.org"
			if tc.tenant == "any" {
				name = "anything.example"
			}
			d := p.Decide(bg, tenants[tc.tenant], Request{Name: name, OrigDst: ap("192.0.2.10:443"),
				Resolved: addrs("192.0.2.10"), Aliases: tc.aliases})
			if d.Allow != tc.allow || (!tc.allow && (d.Code != CodeDeniedDomain || !strings.Contains(d.Detail, tc.detail))) {
				t.Fatalf("Decide = allow %v %s %q; want allow %v, denied_domain with %q", d.Allow, d.Code, d.Detail, tc.allow, tc.detail)
			}
		})
	}
	t.Run("report mode would deny", func(t *testing.T) {
		ct := mustCompile(t, Tenant{Name: "rep", Mode: Report, Allow: []string{"*"}, Deny: []string{"tracker.example"}})
		d := p.Decide(bg, ct, Request{Name: "a.example", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10"), Aliases: []string{"tracker.example"}})
		if !d.Allow || d.WouldAllow || d.Code != CodeDeniedDomain {
			t.Fatalf("report mode: %+v, want let through but would deny (denied_domain)", d)
		}
	})
}

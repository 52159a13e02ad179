package policy

import (
	"context"
	"testing"
)

// TestDecideLookup: a tenant's DNS lookup is judged as a connection to the
// name would be, with no port: a name the rules refuse is never looked up,
// every alias and address is judged, and an allow_internal entry covers
// its internal addresses whatever its ports; report mode lets a refusal
// through. The answer judged is kept, and nothing is to be dialled.
func TestDecideLookup(t *testing.T) {
	p := testPolicy(t)
	tenants := testTenants(t)
	answers := map[string]Answer{
		"example.com":          {Addrs: addrs("192.0.2.10")},
		"www.example.org":      {Addrs: addrs("192.0.2.10"), Aliases: []string{"x.bad.example.org"}},
		"bi-tool.example.com":  {Addrs: addrs("10.20.0.10")},
		"intranet.example.com": {Addrs: addrs("10.30.0.5")},
		"mixed.example.org":    {Addrs: addrs("192.0.2.10", "10.20.0.10")},
	}
	tests := []struct {
		name, tenant, qname string
		allow, would        bool
		code                Code
		lookedUp            bool
	}{
		{"public", "web", "example.com", true, true, CodeAllowed, true},
		{"not on the allow list", "web", "other.example", false, false, CodeNotAllowedDomain, false},
		{"on the deny list", "web", "secret.example.org", false, false, CodeDeniedDomain, false},
		{"alias on the deny list", "web", "www.example.org", false, false, CodeDeniedDomain, true},
		{"internal, covered on port 443 only", "web", "bi-tool.example.com", true, true, CodeAllowed, true},
		{"internal, uncovered", "any", "bi-tool.example.com", false, false, CodeInternalAddress, true},
		{"mixed answer", "web", "mixed.example.org", false, false, CodeInternalAddress, true},
		{"report mode: lets the refusal through", "rep", "other.example", true, false, CodeNotAllowedDomain, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			lookup := func(_ context.Context, name string) (Answer, error) {
				asked = append(asked, name)
				return answers[name], nil
			}
			d := p.DecideLookup(bg, tenants[tc.tenant], tc.qname, lookup)
			if d.Allow != tc.allow || d.WouldAllow != tc.would || d.Code != tc.code {
				t.Fatalf("allow %v would %v code %v (%s), want %v %v %v", d.Allow, d.WouldAllow, d.Code, d.Detail, tc.allow, tc.would, tc.code)
			}
			if (len(asked) == 1) != tc.lookedUp || len(asked) > 1 {
				t.Errorf("looked up %q, want a lookup: %v", asked, tc.lookedUp)
			}
			if d.Dial.IsValid() || d.Name != tc.qname {
				t.Errorf("dial %v name %q", d.Dial, d.Name)
			}
			if tc.lookedUp && len(d.Answer.Addrs) == 0 {
				t.Errorf("the answer judged is not kept: %+v", d.Answer)
			}
		})
	}
}

// TestCheckAliases: another answer's CNAME chain is judged against
// deny_domains, the mode applied.
func TestCheckAliases(t *testing.T) {
	tenants := testTenants(t)
	if d := CheckAliases(tenants["web"], "a.example.org", []string{"b.example.org"}); d.Code != CodeAllowed || !d.Allow {
		t.Errorf("clean chain: %+v", d)
	}
	if d := CheckAliases(tenants["web"], "a.example.org", []string{"b.example.org", "c.bad.example.org"}); d.Code != CodeDeniedDomain || d.Allow {
		t.Errorf("denied chain: %+v", d)
	}
	rep := mustCompile(t, Tenant{Name: "r", Mode: Report, Allow: []string{"*"}, Deny: []string{"bad.example"}})
	if d := CheckAliases(rep, "a.example", []string{"bad.example"}); d.Code != CodeDeniedDomain || !d.Allow || d.WouldAllow {
		t.Errorf("report mode: %+v", d)
	}
}

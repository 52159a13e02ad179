package policy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// testPolicy treats the documentation ranges as public (as a lab would via
// public_cidrs) and has host addresses 10.40.0.1 and 10.40.0.9.
func testPolicy(t testing.TB) *Policy {
	t.Helper()
	c := mustClassifier(t, nil, []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"})
	c.SetHostAddrs([]netip.Addr{netip.MustParseAddr("10.40.0.1"), netip.MustParseAddr("10.40.0.9")})
	return New(c, nil)
}

func mustCompile(t testing.TB, tn Tenant) *CompiledTenant {
	t.Helper()
	ct, err := Compile(tn)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func testTenants(t testing.TB) map[string]*CompiledTenant {
	return map[string]*CompiledTenant{
		"web": mustCompile(t, Tenant{
			Name:  "web",
			Allow: []string{"example.com", "*.example.org"},
			Deny:  []string{"secret.example.org", "*.bad.example.org"},
			Internal: []InternalRule{
				{Host: "bi-tool.example.com", Ports: []uint16{443}},
				{Prefix: netip.MustParsePrefix("10.30.0.0/16"), Ports: []uint16{8443}},
				{Prefix: netip.MustParsePrefix("10.40.0.0/16")},
				{Prefix: netip.MustParsePrefix("10.40.0.9/32")},
			},
		}),
		"any": mustCompile(t, Tenant{
			Name:     "any",
			Allow:    []string{"*"},
			Deny:     []string{"blocked.example"},
			Internal: []InternalRule{{Prefix: netip.MustParsePrefix("10.50.0.0/16"), Ports: []uint16{443}}},
		}),
		"rep": mustCompile(t, Tenant{Name: "rep", Mode: Report, Allow: []string{"example.com"}}),
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// bg is the context of the tests' decisions.
var bg = context.Background()

func TestDecide(t *testing.T) {
	p := testPolicy(t)
	tenants := testTenants(t)
	tests := []struct {
		name   string
		tenant string
		req    Request
		allow  bool // WouldAllow; Allow too unless report mode
		code   Code
		dial   string // "" = zero
		detail string // substring
	}{
		{"public, orig dst in set", "web",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("192.0.2.10", "192.0.2.11")},
			true, CodeAllowed, "192.0.2.11:443", "original destination is one of"},
		{"name does not resolve to orig dst: dial a validated address", "web",
			Request{Name: "example.com", OrigDst: ap("198.51.100.9:443"), Resolved: addrs("192.0.2.20", "192.0.2.21")},
			true, CodeAllowed, "192.0.2.20:443", "dialling a validated address"},
		{"orig dst v6: prefer a v6 answer", "web",
			Request{Name: "example.com", OrigDst: ap("[2001:db8::99]:443"), Resolved: addrs("192.0.2.20", "2001:db8::20", "2001:db8::21")},
			true, CodeAllowed, "[2001:db8::20]:443", ""},
		{"orig dst v4: prefer a v4 answer", "web",
			Request{Name: "example.com", OrigDst: ap("198.51.100.9:80"), Resolved: addrs("2001:db8::20", "192.0.2.20")},
			true, CodeAllowed, "192.0.2.20:80", ""},
		{"orig dst v6, only v4 answers: first answer", "web",
			Request{Name: "example.com", OrigDst: ap("[2001:db8::99]:443"), Resolved: addrs("192.0.2.20", "192.0.2.21")},
			true, CodeAllowed, "192.0.2.20:443", ""},
		{"orig dst v6 in set", "web",
			Request{Name: "example.com", OrigDst: ap("[2001:db8::21]:443"), Resolved: addrs("192.0.2.20", "2001:db8::20", "2001:db8::21")},
			true, CodeAllowed, "[2001:db8::21]:443", ""},
		{"orig dst IPv4-mapped compares unmapped", "web",
			Request{Name: "example.com", OrigDst: ap("[::ffff:192.0.2.11]:443"), Resolved: addrs("192.0.2.10", "192.0.2.11")},
			true, CodeAllowed, "192.0.2.11:443", ""},
		{"internal answer denied", "any",
			Request{Name: "bi-tool.example.com", OrigDst: ap("10.20.0.10:443"), Resolved: addrs("10.20.0.10")},
			false, CodeInternalAddress, "",
			`name "bi-tool.example.com" resolves to 10.20.0.10, which is private-use (RFC 1918)`},
		{"mixed public and internal answers denied", "web",
			Request{Name: "example.com", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10", "169.254.169.254")},
			false, CodeInternalAddress, "", "resolves to 169.254.169.254, which is link-local (RFC 3927)"},
		{"embedded internal answer denied", "web",
			Request{Name: "example.com", OrigDst: ap("[2001:db8::1]:443"), Resolved: addrs("64:ff9b::a00:5")},
			false, CodeInternalAddress, "", "resolves to 64:ff9b::a00:5, which embeds 10.0.0.5, private-use (RFC 1918)"},
		{"no answers denied", "web",
			Request{Name: "example.com", OrigDst: ap("192.0.2.10:443")},
			false, CodeNoAddresses, "", `name "example.com" resolved to no address`},
		{"allow_internal by host", "web",
			Request{Name: "bi-tool.example.com", OrigDst: ap("10.20.0.10:443"), Resolved: addrs("10.20.0.10")},
			true, CodeAllowed, "10.20.0.10:443", ""},
		{"allow_internal by host, other port", "web",
			Request{Name: "bi-tool.example.com", OrigDst: ap("10.20.0.10:8080"), Resolved: addrs("10.20.0.10")},
			false, CodeInternalPort, "", "allow_internal covers it but not port 8080"},
		{"allow_internal by CIDR", "web",
			Request{Name: "app.example.org", OrigDst: ap("10.30.1.1:8443"), Resolved: addrs("10.30.1.1")},
			true, CodeAllowed, "10.30.1.1:8443", ""},
		{"allow_internal by CIDR, other port", "web",
			Request{Name: "app.example.org", OrigDst: ap("10.30.1.1:443"), Resolved: addrs("10.30.1.1")},
			false, CodeInternalPort, "", "not port 443"},
		{"allow_internal by CIDR, any port", "web",
			Request{Name: "app.example.org", OrigDst: ap("10.40.2.2:1234"), Resolved: addrs("10.40.2.2")},
			true, CodeAllowed, "10.40.2.2:1234", ""},
		{"allow_internal CIDR does not open a host address", "web",
			Request{Name: "app.example.org", OrigDst: ap("10.40.0.1:443"), Resolved: addrs("10.40.0.1")},
			false, CodeInternalAddress, "", "10.40.0.1, which is an address of this host"},
		{"single-address CIDR opens a host address", "web",
			Request{Name: "app.example.org", OrigDst: ap("10.40.0.9:443"), Resolved: addrs("10.40.0.9")},
			true, CodeAllowed, "10.40.0.9:443", ""},
		{"allow_internal host rule is for that name only", "web",
			Request{Name: "example.com", OrigDst: ap("10.20.0.10:443"), Resolved: addrs("10.20.0.10")},
			false, CodeInternalAddress, "", "private-use"},
		{"deny wins over allow", "web",
			Request{Name: "secret.example.org", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			false, CodeDeniedDomain, "", `name "secret.example.org" is in deny_domains ("secret.example.org")`},
		{"deny by suffix", "web",
			Request{Name: "a.bad.example.org", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			false, CodeDeniedDomain, "", `("*.bad.example.org")`},
		{"deny suffix does not cover apex", "web",
			Request{Name: "bad.example.org", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			true, CodeAllowed, "192.0.2.10:443", ""},
		{"*.x does not match the apex", "web",
			Request{Name: "example.org", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			false, CodeNotAllowedDomain, "", `name "example.org" is not in allow_domains`},
		{"*.x matches deeper subdomains", "web",
			Request{Name: "a.b.example.org", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			true, CodeAllowed, "192.0.2.10:443", ""},
		{"exact does not match subdomains", "web",
			Request{Name: "www.example.com", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			false, CodeNotAllowedDomain, "", "not in allow_domains"},
		{"exact does not match a longer label", "web",
			Request{Name: "notexample.com", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			false, CodeNotAllowedDomain, "", ""},
		{"* allows any name", "any",
			Request{Name: "anything.test", OrigDst: ap("203.0.113.5:443"), Resolved: addrs("203.0.113.5")},
			true, CodeAllowed, "203.0.113.5:443", ""},
		{"* still applies deny", "any",
			Request{Name: "blocked.example", OrigDst: ap("203.0.113.5:443"), Resolved: addrs("203.0.113.5")},
			false, CodeDeniedDomain, "", `("blocked.example")`},
		{"name wins over literal", "web",
			Request{Name: "example.com", Literal: netip.MustParseAddr("10.0.0.1"), OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			true, CodeAllowed, "192.0.2.10:443", ""},
		{"literal, tenant not *", "web",
			Request{Literal: netip.MustParseAddr("192.0.2.10"), OrigDst: ap("192.0.2.10:443")},
			false, CodeLiteralNotAllowed, "", `IP literal 192.0.2.10 is not allowed`},
		{"literal public equal to orig dst", "any",
			Request{Literal: netip.MustParseAddr("192.0.2.10"), OrigDst: ap("192.0.2.10:443")},
			true, CodeAllowed, "192.0.2.10:443", "IP literal"},
		{"literal mapped equal to orig dst", "any",
			Request{Literal: netip.MustParseAddr("::ffff:192.0.2.10"), OrigDst: ap("192.0.2.10:443")},
			true, CodeAllowed, "192.0.2.10:443", ""},
		{"literal v6 equal to orig dst", "any",
			Request{Literal: netip.MustParseAddr("2001:db8::7"), OrigDst: ap("[2001:db8::7]:80")},
			true, CodeAllowed, "[2001:db8::7]:80", ""},
		{"literal not orig dst", "any",
			Request{Literal: netip.MustParseAddr("198.51.100.7"), OrigDst: ap("198.51.100.9:443")},
			false, CodeLiteralMismatch, "", "IP literal 198.51.100.7 does not match original destination 198.51.100.9"},
		{"literal internal", "any",
			Request{Literal: netip.MustParseAddr("10.0.0.5"), OrigDst: ap("10.0.0.5:443")},
			false, CodeInternalAddress, "", "IP literal 10.0.0.5 is private-use (RFC 1918)"},
		{"literal metadata service", "any",
			Request{Literal: netip.MustParseAddr("169.254.169.254"), OrigDst: ap("169.254.169.254:80")},
			false, CodeInternalAddress, "", "link-local (RFC 3927)"},
		{"literal internal covered by CIDR", "any",
			Request{Literal: netip.MustParseAddr("10.50.1.1"), OrigDst: ap("10.50.1.1:443")},
			true, CodeAllowed, "10.50.1.1:443", ""},
		{"literal internal covered by CIDR, other port", "any",
			Request{Literal: netip.MustParseAddr("10.50.1.1"), OrigDst: ap("10.50.1.1:80")},
			false, CodeInternalPort, "", "not port 80"},
		{"neither name nor literal", "web",
			Request{OrigDst: ap("192.0.2.10:443")},
			false, CodeNoName, "", "neither a host name nor an IP literal"},
		{"report mode: would deny, goes to orig dst", "rep",
			Request{Name: "other.test", OrigDst: ap("192.0.2.10:443"), Resolved: addrs("192.0.2.10")},
			false, CodeNotAllowedDomain, "192.0.2.10:443", "not in allow_domains"},
		{"report mode: internal, goes to orig dst", "rep",
			Request{Name: "example.com", OrigDst: ap("10.0.0.5:443"), Resolved: addrs("10.0.0.5")},
			false, CodeInternalAddress, "10.0.0.5:443", "private-use"},
		{"report mode: allowed, dial is orig dst not the validated address", "rep",
			Request{Name: "example.com", OrigDst: ap("198.51.100.9:443"), Resolved: addrs("192.0.2.20")},
			true, CodeAllowed, "198.51.100.9:443", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tenants[tc.tenant]
			d := p.Decide(bg, ct, tc.req)
			checkDecision(t, d, ct.Mode() == Report, tc.allow, tc.code, tc.dial, tc.detail)
		})
	}
}

func checkDecision(t *testing.T, d Decision, report, would bool, code Code, dial, detail string) {
	t.Helper()
	wantAllow := would || report
	if d.Allow != wantAllow || d.WouldAllow != would || d.Enforced == report {
		t.Errorf("Allow=%v WouldAllow=%v Enforced=%v, want %v %v %v (%s: %s)",
			d.Allow, d.WouldAllow, d.Enforced, wantAllow, would, !report, d.Code, d.Detail)
	}
	if d.Code != code {
		t.Errorf("Code = %s, want %s (%s)", d.Code, code, d.Detail)
	}
	var wantDial netip.AddrPort
	if dial != "" {
		wantDial = netip.MustParseAddrPort(dial)
	}
	if d.Dial != wantDial {
		t.Errorf("Dial = %v, want %v", d.Dial, wantDial)
	}
	if !strings.Contains(d.Detail, detail) {
		t.Errorf("Detail = %q, want it to contain %q", d.Detail, detail)
	}
}

// TestCheckName: the name rules themselves, before any lookup or mode:
// deny_domains first (an exact deny beats a wildcard allow), then
// allow_domains; "*.x" matches the names under x, never x itself; "*"
// matches every name, and deny_domains still applies to it.
func TestCheckName(t *testing.T) {
	tenants := testTenants(t)
	tests := []struct {
		name, tenant, host string
		code               Code
		detail             string
	}{
		{"exact allow", "web", "example.com", CodeAllowed, ""},
		{"wildcard allow", "web", "a.example.org", CodeAllowed, ""},
		{"wildcard allow, deeper", "web", "deep.a.example.org", CodeAllowed, ""},
		{"a wildcard does not match its apex", "web", "example.org", CodeNotAllowedDomain, `"example.org" is not in allow_domains`},
		{"an exact allow does not match below it", "web", "www.example.com", CodeNotAllowedDomain, ""},
		{"exact deny beats wildcard allow", "web", "secret.example.org", CodeDeniedDomain, `("secret.example.org")`},
		{"wildcard deny", "web", "x.bad.example.org", CodeDeniedDomain, `("*.bad.example.org")`},
		{"a wildcard deny does not match its apex", "web", "bad.example.org", CodeAllowed, ""},
		{"no name", "web", "", CodeNoName, ""},
		{"* allows any name", "any", "anything.example.net", CodeAllowed, ""},
		{"deny beats *", "any", "blocked.example", CodeDeniedDomain, `("blocked.example")`},
		{"report mode is not applied here", "rep", "example.net", CodeNotAllowedDomain, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tenants[tc.tenant].checkName(tc.host)
			if v.code != tc.code || v.allow || !strings.Contains(v.detail, tc.detail) {
				t.Fatalf("checkName(%q) = %v %q (allow %v); want %v with %q, allow false (Decide sets it)",
					tc.host, v.code, v.detail, v.allow, tc.code, tc.detail)
			}
		})
	}
}

// TestDecideChecksNameBeforeLookup: the name rules are applied once,
// inside Decide, before the lookup: a name they refuse is never looked up,
// an allowed one is looked up once and then judged by its addresses. (When
// CheckName was a function of its own, called before Decide, its test
// carried these cases; TestCheckName now tests the rules alone.)
func TestDecideChecksNameBeforeLookup(t *testing.T) {
	tenants := testTenants(t)
	tests := []struct {
		name, tenant, host string
		allow              bool
		code               Code
		detail             string
	}{
		{"allowed exact", "web", "example.com", true, CodeAllowed, "allowed: the original destination"},
		{"allow_internal host is allowed", "web", "bi-tool.example.com", true, CodeAllowed, ""},
		{"denied", "web", "x.bad.example.org", false, CodeDeniedDomain, `("*.bad.example.org")`},
		{"not allowed", "web", "example.net", false, CodeNotAllowedDomain, `"example.net"`},
		{"empty", "web", "", false, CodeNoName, ""},
		{"report mode not allowed", "rep", "example.net", false, CodeNotAllowedDomain, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lookups []string
			p := New(testPolicy(t).Classifier(), func(_ context.Context, name string) (Answer, error) {
				lookups = append(lookups, name)
				return Answer{Addrs: addrs("192.0.2.10")}, nil
			})
			ct := tenants[tc.tenant]
			d := p.Decide(bg, ct, Request{Name: tc.host, OrigDst: ap("192.0.2.10:443")})
			dial := ""
			if tc.allow || ct.Mode() == Report {
				dial = "192.0.2.10:443"
			}
			checkDecision(t, d, ct.Mode() == Report, tc.allow, tc.code, dial, tc.detail)
			if want := []string{tc.host}; tc.allow && !slices.Equal(lookups, want) {
				t.Errorf("lookups %q, want %q once", lookups, want)
			}
			if !tc.allow && len(lookups) != 0 {
				t.Errorf("a name the rules refuse was looked up: %q", lookups)
			}
			if d.Name != tc.host {
				t.Errorf("Name = %q, want %q", d.Name, tc.host)
			}
		})
	}
}

func TestDenyAndNoTenant(t *testing.T) {
	p := testPolicy(t)
	tenants := testTenants(t)
	orig := ap("192.0.2.10:443")
	t.Run("enforce", func(t *testing.T) {
		d := Deny(tenants["web"], orig, CodeInvalidName, "bad host")
		checkDecision(t, d, false, false, CodeInvalidName, "", "bad host")
	})
	t.Run("report", func(t *testing.T) {
		d := Deny(tenants["rep"], orig, CodeInvalidName, "bad host")
		checkDecision(t, d, true, false, CodeInvalidName, "192.0.2.10:443", "bad host")
	})
	t.Run("nil tenant", func(t *testing.T) {
		for _, d := range []Decision{
			p.Decide(bg, nil, Request{Name: "example.com", OrigDst: orig, Resolved: addrs("192.0.2.10")}),
			Deny(nil, orig, CodeInvalidName, ""),
		} {
			checkDecision(t, d, false, false, CodeNoTenant, "", "no tenant")
		}
	})
}

func TestCompileRejects(t *testing.T) {
	pfx := netip.MustParsePrefix("10.0.0.0/8")
	tests := []struct {
		name string
		t    Tenant
	}{
		{"upper case pattern", Tenant{Allow: []string{"Example.com"}}},
		{"trailing dot", Tenant{Allow: []string{"example.com."}}},
		{"empty label", Tenant{Allow: []string{"a..b"}}},
		{"empty pattern", Tenant{Deny: []string{""}}},
		{"bare wildcard suffix", Tenant{Allow: []string{"*."}}},
		{"inner wildcard", Tenant{Allow: []string{"a.*.b"}}},
		{"wildcard without dot", Tenant{Deny: []string{"*example.com"}}},
		{"unknown mode", Tenant{Mode: 7}},
		{"rule with host and CIDR", Tenant{Internal: []InternalRule{{Host: "a.example", Prefix: pfx}}}},
		{"rule with neither", Tenant{Internal: []InternalRule{{Ports: []uint16{443}}}}},
		{"rule with port 0", Tenant{Internal: []InternalRule{{Prefix: pfx, Ports: []uint16{0}}}}},
		{"rule with wildcard host", Tenant{Internal: []InternalRule{{Host: "*.example.com"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.t)
			if !errors.Is(err, ErrInvalidTenant) {
				t.Fatalf("Compile() error = %v, want ErrInvalidTenant", err)
			}
		})
	}
}

func TestCodeStrings(t *testing.T) {
	seen := map[string]bool{}
	for c := CodeAllowed; c < codeCount; c++ {
		s := c.String()
		if s == "" || strings.HasPrefix(s, "code_") || seen[s] {
			t.Errorf("Code(%d).String() = %q: missing or duplicate", c, s)
		}
		seen[s] = true
	}
	if got := Code(200).String(); got != "code_200" {
		t.Errorf("Code(200).String() = %q", got)
	}
}

func TestDecideAllowDoesNotAllocate(t *testing.T) {
	p := testPolicy(t)
	ct := testTenants(t)["web"]
	req := Request{Name: "www.example.org", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("192.0.2.10", "192.0.2.11", "2001:db8::10")}
	n := testing.AllocsPerRun(100, func() {
		if d := p.Decide(bg, ct, req); !d.Allow {
			t.Fatal(d.Detail)
		}
	})
	if n != 0 {
		t.Fatalf("Decide allow path allocates %v times per run, want 0", n)
	}
}

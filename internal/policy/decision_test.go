package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDecideLookupFailures: a failed lookup is a DNS code (the one its
// LookupError names, else dns_failure) with the error in the detail;
// report mode lets the connection through to its original destination,
// as for any verdict on the destination.
func TestDecideLookupFailures(t *testing.T) {
	tenants := testTenants(t)
	nx := errors.New("lookup example.com: NXDOMAIN")
	tests := []struct {
		name   string
		err    error
		tenant string
		code   Code
	}{
		{"nxdomain", &LookupError{Code: CodeDNSNXDomain, Err: nx}, "web", CodeDNSNXDomain},
		{"wrapped timeout", fmt.Errorf("resolve: %w", &LookupError{Code: CodeDNSTimeout, Err: errors.New("i/o timeout")}), "web", CodeDNSTimeout},
		{"unclassified", errors.New("SERVFAIL"), "web", CodeDNSFailure},
		{"report mode", &LookupError{Code: CodeDNSNoAddresses, Err: errors.New("no addresses")}, "rep", CodeDNSNoAddresses},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(testPolicy(t).Classifier(), func(context.Context, string) (Answer, error) {
				return Answer{Duration: time.Millisecond}, tc.err
			})
			ct := tenants[tc.tenant]
			d := p.Decide(bg, ct, Request{Name: "example.com", OrigDst: ap("192.0.2.10:443")})
			dial := ""
			if ct.Mode() == Report {
				dial = "192.0.2.10:443"
			}
			checkDecision(t, d, ct.Mode() == Report, false, tc.code, dial, `resolve "example.com": `+tc.err.Error())
			if d.Answer.Duration != time.Millisecond {
				t.Errorf("Answer = %+v, want the failed lookup's duration", d.Answer)
			}
		})
	}
}

// TestDecideCarriesTheAnswer: an allowed name's decision carries what the
// lookup found, and may be dialled at each of its addresses, the chosen one
// first; report mode dials the original destination only.
func TestDecideCarriesTheAnswer(t *testing.T) {
	ans := Answer{Addrs: addrs("192.0.2.10", "192.0.2.11", "2001:db8::10"), Aliases: []string{"cdn.example.net"},
		Dropped: 3, Server: "192.0.2.53:53", Duration: 2 * time.Millisecond}
	p := New(testPolicy(t).Classifier(), func(context.Context, string) (Answer, error) { return ans, nil })
	tenants := testTenants(t)
	d := p.Decide(bg, tenants["web"], Request{Name: "example.com", OrigDst: ap("192.0.2.11:443")})
	if !d.Allow || d.Name != "example.com" || !slices.Equal(d.Answer.Addrs, ans.Addrs) || d.Answer.Dropped != 3 ||
		d.Answer.Server != ans.Server || !slices.Equal(d.Answer.Aliases, ans.Aliases) {
		t.Fatalf("decision %+v does not carry the answer %+v", d, ans)
	}
	want := []netip.AddrPort{ap("192.0.2.11:443"), ap("192.0.2.10:443"), ap("[2001:db8::10]:443")}
	if got := d.Targets(); !slices.Equal(got, want) {
		t.Errorf("Targets = %v, want %v", got, want)
	}
	d = p.Decide(bg, tenants["rep"], Request{Name: "example.com", OrigDst: ap("198.51.100.7:443")})
	if got := d.Targets(); !slices.Equal(got, []netip.AddrPort{ap("198.51.100.7:443")}) {
		t.Errorf("report mode Targets = %v, want the original destination only", got)
	}
	d = p.Decide(bg, tenants["web"], Request{Name: "example.net", OrigDst: ap("192.0.2.11:443")})
	if got := d.Targets(); got != nil {
		t.Errorf("a denied decision has Targets %v", got)
	}
}

// TestDenyAppliesTheModeOnce: report mode lets through what Deny is given
// for a request it cannot judge, never a connection that could not be read
// or admitted, nor one of no tenant; an upstream failure is an error in
// every mode.
func TestDenyAppliesTheModeOnce(t *testing.T) {
	tenants := testTenants(t)
	orig := ap("192.0.2.10:80")
	tests := []struct {
		tenant  string
		code    Code
		allow   bool
		outcome string
	}{
		{"web", CodeConnectMethod, false, "deny"},
		{"rep", CodeConnectMethod, true, "would_deny"},
		{"rep", CodePortMismatch, true, "would_deny"},
		{"rep", CodeDNSTimeout, true, "would_deny"},
		{"rep", CodePeekTimeout, false, "deny"},
		{"rep", CodeHeadTooLarge, false, "deny"},
		{"rep", CodeOverLimit, false, "deny"},
		{"rep", CodeNoOriginalDst, false, "deny"},
		{"web", CodeUpstreamRefused, false, "error"},
		{"rep", CodeUpstreamTimeout, false, "error"},
		{"", CodeNoTenant, false, "deny"},
	}
	for _, tc := range tests {
		t.Run(tc.tenant+"/"+tc.code.String(), func(t *testing.T) {
			d := Deny(tenants[tc.tenant], orig, tc.code, "why")
			if d.Allow != tc.allow || d.WouldAllow || d.Enforced == tc.allow || d.Outcome() != tc.outcome || d.Code != tc.code || d.Detail != "why" {
				t.Fatalf("Deny = %+v (outcome %s), want allow %v, outcome %s", d, d.Outcome(), tc.allow, tc.outcome)
			}
			if tc.allow && d.Dial != orig {
				t.Errorf("Dial = %v, want the original destination", d.Dial)
			}
		})
	}
}

// TestTenantMessage: what a refused tenant is told names the destination
// and the kind of refusal, never an address the name resolved to.
func TestTenantMessage(t *testing.T) {
	p := testPolicy(t)
	ct := testTenants(t)["web"]
	internal := p.Decide(bg, ct, Request{Name: "example.com", OrigDst: ap("10.0.0.5:443"), Resolved: addrs("10.0.0.5")})
	tests := []struct {
		d    Decision
		want string
	}{
		{internal, `"example.com" is an internal address`},
		{Decision{Code: CodeDNSNXDomain, Name: "nope.example"}, `"nope.example" does not exist (DNS NXDOMAIN)`},
		{Decision{Code: CodeDeniedDomain}, "the destination is on the deny list"},
		{Decision{Code: CodeConnectMethod}, "CONNECT is not allowed"},
		{Decision{Code: CodeTooManyRecords}, "the request could not be read: too_many_records"},
		{Decision{Code: CodeNoAddresses}, "access denied (no_addresses)"},
	}
	for _, tc := range tests {
		if got := tc.d.TenantMessage(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.d.Code, got, tc.want)
		}
	}
	if strings.Contains(internal.TenantMessage(), "10.0.0.5") {
		t.Errorf("the tenant is told the internal address: %q", internal.TenantMessage())
	}
}

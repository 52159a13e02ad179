package policy

import (
	"context"
	"testing"
)

// TestDecideOn: a later request on a connection is allowed only when its
// whole decision allows it and the connection's address is one its name
// was validated at (or an allow_internal CIDR covers that address and
// port); everything Decide refuses stays refused, and report mode lets a
// refused one through as would_deny.
func TestDecideOn(t *testing.T) {
	p := testPolicy(t)
	tenants := testTenants(t)
	runOnConn(t, "DecideOn", func(ct *CompiledTenant, req Request) Decision { return p.DecideOn(bg, ct, req) }, tenants, []onConnCase{
		{"the name resolves to the connection's address", "web",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:80"), Resolved: addrs("192.0.2.10", "192.0.2.11")},
			true, true, CodeAllowed},
		{"the name resolves elsewhere: never redialled", "web",
			Request{Name: "a.example.org", OrigDst: ap("192.0.2.11:80"), Resolved: addrs("198.51.100.7")},
			false, false, CodeNotOnConnection},
		{"IPv4-mapped answer of the connection's address: the same address", "web",
			Request{Name: "a.example.org", OrigDst: ap("192.0.2.11:80"), Resolved: addrs("::ffff:192.0.2.11")},
			true, true, CodeAllowed},
		{"deny list first", "web",
			Request{Name: "secret.example.org", OrigDst: ap("192.0.2.11:80"), Resolved: addrs("192.0.2.11")},
			false, false, CodeDeniedDomain},
		{"not on the allow list", "web",
			Request{Name: "public.example.net", OrigDst: ap("192.0.2.11:80"), Resolved: addrs("192.0.2.11")},
			false, false, CodeNotAllowedDomain},
		{"a host entry covers its own name only", "web",
			Request{Name: "example.com", OrigDst: ap("10.20.0.20:443"), Resolved: addrs("10.20.0.20")},
			false, false, CodeInternalAddress},
		{"the host entry's name at its address", "web",
			Request{Name: "bi-tool.example.com", OrigDst: ap("10.20.0.20:443"), Resolved: addrs("10.20.0.20")},
			true, true, CodeAllowed},
		{"a CIDR entry covers the address on its port: any allowed name", "web",
			Request{Name: "example.com", OrigDst: ap("10.30.0.5:8443"), Resolved: addrs("192.0.2.10")},
			true, true, CodeAllowed},
		{"a CIDR entry, another port", "web",
			Request{Name: "example.com", OrigDst: ap("10.30.0.5:80"), Resolved: addrs("192.0.2.10")},
			false, false, CodeNotOnConnection},
		{"the host's own address is not opened by a broad block", "web",
			Request{Name: "example.com", OrigDst: ap("10.40.0.1:80"), Resolved: addrs("192.0.2.10")},
			false, false, CodeNotOnConnection},
		{"literal of the connection's address", "any",
			Request{Literal: addrs("192.0.2.11")[0], OrigDst: ap("192.0.2.11:80")},
			true, true, CodeAllowed},
		{"literal of another address", "any",
			Request{Literal: addrs("192.0.2.12")[0], OrigDst: ap("192.0.2.11:80")},
			false, false, CodeLiteralMismatch},
		{"report mode lets a mismatch through", "rep",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:80"), Resolved: addrs("198.51.100.7")},
			true, false, CodeNotOnConnection},
	})
}

// onConnCase is a decision on a request for an open connection, and what
// it must be.
type onConnCase struct {
	name   string
	tenant string
	req    Request
	allow  bool // Allow
	would  bool // WouldAllow
	code   Code
}

// runOnConn runs each case through decide (named what) with its tenant.
func runOnConn(t *testing.T, what string, decide func(*CompiledTenant, Request) Decision,
	tenants map[string]*CompiledTenant, cases []onConnCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(tenants[tc.tenant], tc.req)
			if d.Allow != tc.allow || d.WouldAllow != tc.would || d.Code != tc.code {
				t.Fatalf("%s = allow %v would %v %v (%s); want allow %v would %v %v",
					what, d.Allow, d.WouldAllow, d.Code, d.Detail, tc.allow, tc.would, tc.code)
			}
		})
	}
}

func TestDecideOnAllowDoesNotAllocate(t *testing.T) {
	p := testPolicy(t)
	ct := testTenants(t)["web"]
	req := Request{Name: "www.example.org", OrigDst: ap("192.0.2.11:80"), Resolved: addrs("192.0.2.10", "192.0.2.11")}
	n := testing.AllocsPerRun(100, func() {
		if d := p.DecideOn(bg, ct, req); !d.Allow {
			t.Fatal(d.Detail)
		}
	})
	if n != 0 {
		t.Fatalf("DecideOn allow path allocates %v times per run, want 0", n)
	}
}

// TestRecheck: an open connection is judged again on the answer it was
// judged with when it opened, never a new lookup (its policy's Lookup
// here would answer with an internal address and is never called), by the
// rules of the tenant given: a deny-listed name or alias, an address the
// config no longer covers, a connection's address that is not the name's,
// and report mode all decide as DecideOn would.
func TestRecheck(t *testing.T) {
	c := mustClassifier(t, nil, []string{"192.0.2.0/24", "198.51.100.0/24"})
	lookups := 0
	p := New(c, func(context.Context, string) (Answer, error) {
		lookups++
		return Answer{Addrs: addrs("10.99.0.1")}, nil
	})
	tenants := testTenants(t)
	runOnConn(t, "Recheck", p.Recheck, tenants, []onConnCase{
		{"still allowed", "web",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("192.0.2.10", "192.0.2.11")},
			true, true, CodeAllowed},
		{"the name now deny-listed", "web",
			Request{Name: "x.bad.example.org", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("192.0.2.11")},
			false, false, CodeDeniedDomain},
		{"an alias now deny-listed", "web",
			Request{Name: "a.example.org", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("192.0.2.11"), Aliases: []string{"secret.example.org"}},
			false, false, CodeDeniedDomain},
		{"the name off the allow list", "web",
			Request{Name: "public.example.net", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("192.0.2.11")},
			false, false, CodeNotAllowedDomain},
		{"an internal address no longer covered", "web",
			Request{Name: "example.com", OrigDst: ap("10.20.0.20:443"), Resolved: addrs("10.20.0.20")},
			false, false, CodeInternalAddress},
		{"the host entry's address, still covered", "web",
			Request{Name: "bi-tool.example.com", OrigDst: ap("10.20.0.20:443"), Resolved: addrs("10.20.0.20")},
			true, true, CodeAllowed},
		{"report mode let it open at another address", "rep",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("198.51.100.7")},
			true, false, CodeNotOnConnection},
		{"that connection once the tenant enforces", "web",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("198.51.100.7")},
			false, false, CodeNotOnConnection},
		{"report mode let it open with no answer", "web",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:443")},
			false, false, CodeNoAddresses},
		{"a literal", "any",
			Request{Literal: addrs("192.0.2.11")[0], OrigDst: ap("192.0.2.11:443")},
			true, true, CodeAllowed},
		{"a literal once the allow list is not *", "web",
			Request{Literal: addrs("192.0.2.11")[0], OrigDst: ap("192.0.2.11:443")},
			false, false, CodeLiteralNotAllowed},
		{"no tenant", "",
			Request{Name: "example.com", OrigDst: ap("192.0.2.11:443"), Resolved: addrs("192.0.2.11")},
			false, false, CodeNoTenant},
	})
	if lookups != 0 {
		t.Errorf("Recheck looked up %d names, want none", lookups)
	}
}

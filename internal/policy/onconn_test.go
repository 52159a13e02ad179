package policy

import (
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
	tests := []struct {
		name   string
		tenant string
		req    Request
		allow  bool // Allow
		would  bool // WouldAllow
		code   Code
	}{
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.DecideOn(bg, tenants[tc.tenant], tc.req)
			if d.Allow != tc.allow || d.WouldAllow != tc.would || d.Code != tc.code {
				t.Fatalf("DecideOn = allow %v would %v %v (%s); want allow %v would %v %v",
					d.Allow, d.WouldAllow, d.Code, d.Detail, tc.allow, tc.would, tc.code)
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

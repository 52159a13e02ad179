package httphead

import (
	"errors"
	"net/netip"
	"testing"
)

// TestParseAuthority: a destination a person gives is read as a Host
// header is: a name or an IP literal in any spelling, an optional port.
func TestParseAuthority(t *testing.T) {
	tests := []struct {
		in   string
		name string
		addr string
		port uint16
		ok   bool
	}{
		{"www.Example.com:8080", "www.example.com", "", 8080, true},
		{"www.example.com", "www.example.com", "", 0, true},
		{"[2001:db8::1]:443", "", "2001:db8::1", 443, true},
		{"2130706433", "", "127.0.0.1", 0, true},
		{"2001:db8::1", "", "", 0, false},
		{"user@www.example.com", "", "", 0, false},
		{"www.example.com:0", "", "", 0, false},
		{"", "", "", 0, false},
	}
	for _, tc := range tests {
		name, addr, port, err := ParseAuthority(tc.in)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%q: err %v, want ok %v (ErrMalformed otherwise)", tc.in, err, tc.ok)
			continue
		}
		var want netip.Addr
		if tc.addr != "" {
			want = netip.MustParseAddr(tc.addr)
		}
		if err == nil && (name != tc.name || addr != want || port != tc.port) {
			t.Errorf("%q = %q %v %d, want %q %v %d", tc.in, name, addr, port, tc.name, want, tc.port)
		}
	}
}

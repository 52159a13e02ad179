package dnsname

import (
	"bufio"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantName string
		wantAddr string
		wantErr  string
	}{
		{name: "plain", in: "example.com", wantName: "example.com"},
		{name: "upper case", in: "Bi-Tool.EXAMPLE.com", wantName: "bi-tool.example.com"},
		{name: "trailing dot", in: "example.com.", wantName: "example.com"},
		{name: "two trailing dots", in: "example.com..", wantErr: "empty label"},
		{name: "underscore", in: "_srv.example.com", wantName: "_srv.example.com"},
		{name: "idna unicode", in: "bücher.example", wantName: "xn--bcher-kva.example"},
		{name: "idna upper unicode", in: "BÜCHER.example", wantName: "xn--bcher-kva.example"},
		{name: "idna a-label kept", in: "xn--bcher-kva.example", wantName: "xn--bcher-kva.example"},
		{name: "fullwidth dot maps", in: "example\uff0ecom", wantName: "example.com"},
		{name: "single label", in: "localhost", wantName: "localhost"},
		{name: "empty", in: "", wantErr: "empty host"},
		{name: "only dot", in: ".", wantErr: "no labels"},
		{name: "leading dot", in: ".example.com", wantErr: "empty label"},
		{name: "hyphen start", in: "-a.example", wantErr: "starts or ends"},
		{name: "hyphen end", in: "a-.example", wantErr: "starts or ends"},
		{name: "space", in: "a b.example", wantErr: "invalid host name"},
		{name: "slash", in: "a/b.example", wantErr: "invalid host name"},
		{name: "percent", in: "a%2e.example", wantErr: "invalid host name"},
		{name: "nul byte", in: "a\x00.example", wantErr: "invalid host name"},
		{name: "label 64", in: strings.Repeat("a", 64) + ".example", wantErr: "longer than 63"},
		{name: "label 63", in: strings.Repeat("a", 63) + ".example", wantName: strings.Repeat("a", 63) + ".example"},
		{name: "name 254", in: strings.Repeat("a.", 126) + "ab", wantErr: "more than 253"},
		{name: "name 253", in: strings.Repeat("a.", 126) + "a", wantName: strings.Repeat("a.", 126) + "a"},
		{name: "huge", in: strings.Repeat("a", 5000), wantErr: "5000 bytes"},
		{name: "numeric tld", in: "1.2.3.4.5", wantErr: "numeric"},
		{name: "v4 out of range", in: "256.1.1.1", wantErr: "numeric"},
		{name: "hex tld not ip", in: "a.0x10", wantErr: "numeric"},
		{name: "numeric inner label is fine", in: "123.example", wantName: "123.example"},
		{name: "hexish word tld is a name", in: "a.0xg", wantName: "a.0xg"},

		{name: "dotted quad", in: "10.0.0.5", wantAddr: "10.0.0.5"},
		{name: "dotted quad trailing dot", in: "10.0.0.5.", wantAddr: "10.0.0.5"},
		{name: "decimal integer", in: "2130706433", wantAddr: "127.0.0.1"},
		{name: "octal integer", in: "017700000001", wantAddr: "127.0.0.1"},
		{name: "hex two parts", in: "0x0a.1", wantAddr: "10.0.0.1"},
		{name: "hex upper", in: "0X7F.1", wantAddr: "127.0.0.1"},
		{name: "two parts", in: "10.1", wantAddr: "10.0.0.1"},
		{name: "three parts", in: "169.254.43518", wantAddr: "169.254.169.254"},
		{name: "octal parts", in: "0251.0376.0251.0376", wantAddr: "169.254.169.254"},
		{name: "hex whole", in: "0xa9fea9fe", wantAddr: "169.254.169.254"},
		{name: "bare 0x is zero", in: "0x", wantAddr: "0.0.0.0"},
		{name: "zero", in: "0", wantAddr: "0.0.0.0"},
		{name: "max", in: "4294967295", wantAddr: "255.255.255.255"},
		{name: "too big", in: "4294967296", wantErr: "numeric"},
		{name: "bad octal digit", in: "08.1.1.1", wantErr: "invalid host name"},
		{name: "v6 bracketed", in: "[2001:db8::1]", wantAddr: "2001:db8::1"},
		{name: "v6 bare", in: "2001:db8::1", wantAddr: "2001:db8::1"},
		{name: "v6 mapped", in: "[::ffff:10.0.0.5]", wantAddr: "::ffff:10.0.0.5"},
		{name: "v6 zone refused", in: "[fe80::1%eth0]", wantErr: "invalid host name"},
		{name: "v6 bracket unclosed", in: "[2001:db8::1", wantErr: "invalid host name"},
		{name: "v6 brackets around v4", in: "[10.0.0.1]", wantErr: "invalid host name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, addr, err := Host(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Host(%q) = %q, %v, %v; want error containing %q", tc.in, name, addr, err, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrEmpty) {
					t.Fatalf("error %v is neither ErrInvalid nor ErrEmpty", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Host(%q): %v", tc.in, err)
			}
			if tc.wantAddr != "" {
				if want := netip.MustParseAddr(tc.wantAddr); addr != want || name != "" {
					t.Fatalf("Host(%q) = %q, %v; want address %v", tc.in, name, addr, want)
				}
				return
			}
			if name != tc.wantName || addr.IsValid() {
				t.Fatalf("Host(%q) = %q, %v; want name %q", tc.in, name, addr, tc.wantName)
			}
		})
	}
}

func TestNormalizeIsIdempotent(t *testing.T) {
	for _, in := range []string{"Example.COM.", "bücher.example", "_a.b-c.d", "xn--bcher-kva.example"} {
		once, err := Normalize(in)
		if err != nil {
			t.Fatalf("Normalize(%q): %v", in, err)
		}
		twice, err := Normalize(once)
		if err != nil || twice != once {
			t.Fatalf("Normalize(%q) = %q, %v; want %q", once, twice, err, once)
		}
	}
}

func TestNormalizeASCIIDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Normalize("api.example.com"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Normalize allocated %v times on a lower-case ASCII name", allocs)
	}
}

// FuzzHost fuzzes Host on the host strings the parsers feed it (seeds in
// testdata/hosts.txt: SNI and Host header spellings, inet_aton forms,
// IPv6 with and without brackets): an error gives neither a name nor an
// address, otherwise exactly one; a name is a fixed point of Normalize and
// of Host and never an IP literal; an address round-trips through
// ParseIPLiteral.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"example.com", "0x0a.1", "[::1]", "bücher.example", "1.2.3.4.5", "a..b", "2130706433"} {
		f.Add(s)
	}
	file, err := os.Open(filepath.Join("testdata", "hosts.txt"))
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	for sc := bufio.NewScanner(file); sc.Scan(); {
		f.Add(sc.Text())
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, addr, err := Host(s)
		if err != nil {
			if name != "" || addr.IsValid() {
				t.Fatalf("Host(%q) = %q, %v with error %v", s, name, addr, err)
			}
			return
		}
		if addr.IsValid() == (name != "") {
			t.Fatalf("Host(%q) = %q, %v: want exactly one of name and address", s, name, addr)
		}
		if addr.IsValid() {
			if back, ok := ParseIPLiteral(addr.String()); !ok || back != addr {
				t.Fatalf("Host(%q) = %v, which does not round-trip (%v, %v)", s, addr, back, ok)
			}
			return
		}
		// A normalised name is a fixed point and never an IP literal.
		if again, err := Normalize(name); err != nil || again != name {
			t.Fatalf("Normalize(%q) = %q, %v after Host(%q)", name, again, err, s)
		}
		if again, a2, err := Host(name); again != name || a2.IsValid() || err != nil {
			t.Fatalf("Host(%q) = %q, but Host(%q) = %q, %v, %v", s, name, name, again, a2, err)
		}
		if _, ok := ParseIPLiteral(name); ok {
			t.Fatalf("Host(%q) returned name %q that parses as an IP literal", s, name)
		}
	})
}

func BenchmarkHostName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = Host("api.example.com")
	}
}

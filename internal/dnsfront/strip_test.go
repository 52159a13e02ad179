package dnsfront

import (
	"testing"

	"github.com/miekg/dns"
)

const echValue = "AEn+DQBFKwAgACABWIHUGj4u+PIggYXcR5JF0gYk3dCRioBW8uJq9H4mKAAIAAEAAQABAANAEnB1YmxpYy50bHMtZWNoLmRldgAA"

// TestStrip: ech, QUIC-only ALPN values and address hints are removed as
// asked; a record whose endpoint needs what was removed is dropped; every
// other parameter and every other record is passed on unchanged.
func TestStrip(t *testing.T) {
	all := Strip{ECH: true, QUIC: true, Hints: true}
	tests := []struct {
		name  string
		strip Strip
		in    []string
		want  []string
		st    Stripped
	}{
		{"ech removed, the rest kept byte for byte", Strip{ECH: true},
			[]string{`a.example. 60 IN HTTPS 1 . alpn="h3,h2" port=8443 ipv4hint=192.0.2.1 ech="` + echValue + `" key65000="x"`},
			[]string{`a.example. 60 IN HTTPS 1 . alpn="h3,h2" port="8443" ipv4hint="192.0.2.1" key65000="x"`}, Stripped{Params: 1, ECH: 1}},
		{"nothing asked: nothing removed", Strip{},
			[]string{`a.example. 60 IN HTTPS 1 . alpn="h3,h2" ech="` + echValue + `"`},
			[]string{`a.example. 60 IN HTTPS 1 . alpn="h3,h2" ech="` + echValue + `"`}, Stripped{}},
		{"QUIC values removed from alpn", Strip{QUIC: true},
			[]string{`a.example. 60 IN HTTPS 1 . alpn="h3,h3-29,hq-interop,h2,http/1.1"`},
			[]string{`a.example. 60 IN HTTPS 1 . alpn="h2,http/1.1"`}, Stripped{ALPN: 3}},
		{"alpn of h3 only: the key goes, the default (http/1.1) stays", Strip{QUIC: true},
			[]string{`a.example. 60 IN HTTPS 1 . alpn="h3" port=443`},
			[]string{`a.example. 60 IN HTTPS 1 . port="443"`}, Stripped{ALPN: 1, Params: 1}},
		{"h3 only without the default: the record goes", Strip{QUIC: true},
			[]string{`a.example. 60 IN HTTPS 1 . mandatory=alpn alpn="h3" no-default-alpn`, `a.example. 60 IN HTTPS 2 . alpn="h2"`},
			[]string{`a.example. 60 IN HTTPS 2 . alpn="h2"`}, Stripped{ALPN: 1, Params: 1, Records: 1}},
		{"ech mandatory: the record goes", Strip{ECH: true},
			[]string{`a.example. 60 IN HTTPS 1 . mandatory=ech ech="` + echValue + `"`},
			nil, Stripped{Params: 1, ECH: 1, Records: 1}},
		{"hints removed", Strip{Hints: true},
			[]string{`a.example. 60 IN HTTPS 1 . ipv4hint=10.0.0.1 ipv6hint=fd00::1`},
			[]string{`a.example. 60 IN HTTPS 1 .`}, Stripped{Params: 2, Hints: 2}},
		{"SVCB too", all,
			[]string{`_dns.a.example. 60 IN SVCB 1 dns.a.example. alpn="doq,dot" ech="` + echValue + `"`},
			[]string{`_dns.a.example. 60 IN SVCB 1 dns.a.example. alpn="dot"`}, Stripped{Params: 1, ECH: 1, ALPN: 1}},
		{"alias mode and other types untouched", all,
			[]string{`a.example. 60 IN HTTPS 0 b.example.`, `a.example. 60 IN CNAME b.example.`, `b.example. 60 IN A 192.0.2.1`},
			[]string{`a.example. 60 IN HTTPS 0 b.example.`, `a.example. 60 IN CNAME b.example.`, `b.example. 60 IN A 192.0.2.1`}, Stripped{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rrs, st := tc.strip.Apply(mustRRs(t, tc.in...))
			if st != tc.st {
				t.Errorf("stripped %+v, want %+v", st, tc.st)
			}
			want := mustRRs(t, tc.want...)
			if len(rrs) != len(want) {
				t.Fatalf("%d records, want %d: %v", len(rrs), len(want), rrs)
			}
			for i := range rrs {
				if got, w := wireOf(t, rrs[i]), wireOf(t, want[i]); got != w {
					t.Errorf("record %d:\n%v\nwant:\n%v", i, rrs[i], want[i])
				}
			}
		})
	}
}

// wireOf packs one record uncompressed.
func wireOf(t testing.TB, rr dns.RR) string {
	t.Helper()
	b := make([]byte, dns.Len(rr)+64)
	n, err := dns.PackRR(rr, b, 0, nil, false)
	if err != nil {
		t.Fatalf("pack %v: %v", rr, err)
	}
	return string(b[:n])
}

func TestQuicOnly(t *testing.T) {
	for id, want := range map[string]bool{"h3": true, "h3-29": true, "hq-interop": true, "doq": true, "doq-i02": true,
		"h2": false, "http/1.1": false, "h3x": false, "dot": false} {
		if quicOnly(id) != want {
			t.Errorf("quicOnly(%q) = %v", id, !want)
		}
	}
}

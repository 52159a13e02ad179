package sni

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// ext is one raw extension for synthetic ClientHellos.
type ext struct {
	typ  uint16
	data []byte
}

// helloMsg builds a ClientHello handshake message (header included) with
// the given extensions; a nil exts omits the extensions block entirely.
func helloMsg(exts []ext) []byte {
	var b cryptobyte.Builder
	b.AddUint8(handshakeTypeClientHello)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(0x0303)
		b.AddBytes(make([]byte, 32))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(0x1301); b.AddUint16(0xc02f) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
		if exts == nil {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range exts {
				b.AddUint16(e.typ)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
			}
		})
	})
	return b.BytesOrPanic()
}

// inRecords wraps msg in handshake records of at most size payload bytes.
func inRecords(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, 0x16, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// inNRecords wraps msg in n handshake records of nearly equal size.
func inNRecords(msg []byte, n int) []byte {
	var out []byte
	for i := range n {
		out = append(out, inRecords(msg[i*len(msg)/n:(i+1)*len(msg)/n], 1<<14)...)
	}
	return out
}

func sniExt(entries ...[]byte) ext {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, e := range entries {
			b.AddBytes(e)
		}
	})
	return ext{extServerName, b.BytesOrPanic()}
}

// hostName is a server_name entry of type host_name (0) or another type.
func hostName(typ uint8, name string) []byte {
	return append([]byte{typ, byte(len(name) >> 8), byte(len(name))}, name...)
}

func sni(name string) ext { return sniExt(hostName(0, name)) }

func alpnExt(protos ...string) ext {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, p := range protos {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
		}
	})
	return ext{extALPN, b.BytesOrPanic()}
}

func versionsExt(vs ...uint16) ext {
	d := []byte{byte(2 * len(vs))}
	for _, v := range vs {
		d = append(d, byte(v>>8), byte(v))
	}
	return ext{extSupportedVersions, d}
}

func padding(n int) ext { return ext{21, make([]byte, n)} }

// helloCase is one synthetic ClientHello and what it must parse to.
type helloCase struct {
	name  string
	wire  []byte
	max   int
	st    Status
	err   error  // sentinel the error must wrap
	msg   string // substring of the error
	check func(Result) bool
}

func malformedHelloCases(tb testing.TB) []helloCase {
	tb.Helper()
	one := func(exts ...ext) []byte { return inRecords(helloMsg(exts), 1<<14) }
	basic := one(sni("example.test"))
	sameRecord := helloMsg([]ext{sni("example.test")})
	sameRecord = append(sameRecord, 1, 0, 0, 0)
	sameRecordWire := append([]byte{0x16, 3, 1, byte(len(sameRecord) >> 8), byte(len(sameRecord))}, sameRecord...)
	big := helloMsg([]ext{sni("big.example.test"), padding(40 << 10)})
	small := helloMsg([]ext{sni("example.test"), padding(200)})
	return []helloCase{
		{name: "SNI only", wire: basic, st: Done, check: func(r Result) bool { return r.Name == "example.test" }},
		{name: "no extensions block", wire: inRecords(helloMsg(nil), 100), st: Done,
			check: func(r Result) bool { return r.Name == "" && r.LegacyVersion == 0x0303 }},
		{name: "no server_name", wire: one(alpnExt("h2")), st: Done,
			check: func(r Result) bool { return r.Name == "" && slices.Equal(r.ALPN, []string{"h2"}) }},
		{name: "upper case and trailing dot", wire: one(sni("WWW.Example.Test.")), st: Done,
			check: func(r Result) bool { return r.Name == "www.example.test" }},
		{name: "Unicode name to A-label", wire: one(sni("bücher.example")), st: Done,
			check: func(r Result) bool { return r.Name == "xn--bcher-kva.example" }},
		{name: "other name_type ignored", wire: one(sniExt(hostName(7, "x"))), st: Done,
			check: func(r Result) bool { return r.Name == "" }},
		{name: "ALPN, GREASE versions, ECH", wire: one(sni("a.example.test"), alpnExt("h2", "http/1.1"),
			versionsExt(0x3a3a, 0x0304, 0x0303), ext{extECH, []byte{0}}), st: Done,
			check: func(r Result) bool {
				return r.ECH && slices.Equal(r.SupportedVersions, []uint16{0x0304, 0x0303}) && len(r.ALPN) == 2
			}},
		{name: "40 KiB hello across three records", wire: inRecords(big, 1<<14), max: 64 << 10, st: Done,
			check: func(r Result) bool { return r.Name == "big.example.test" }},
		{name: "hello in 32 records", wire: inNRecords(small, 32), st: Done,
			check: func(r Result) bool { return r.Name == "example.test" }},
		{name: "trailing records not examined", wire: append(basic, 0x17, 3, 3, 0, 1, 0xff), st: Done},
		{name: "IP literal SNI", wire: one(sni("192.0.2.7")), st: Malformed, err: ErrIPLiteralSNI,
			check: func(r Result) bool { return r.Addr == netip.MustParseAddr("192.0.2.7") && r.Name == "" }},
		{name: "inet_aton SNI", wire: one(sni("2130706433")), st: Malformed, err: ErrIPLiteralSNI,
			check: func(r Result) bool { return r.Addr == netip.MustParseAddr("127.0.0.1") }},
		{name: "invalid name", wire: one(sni("a b.example")), st: Malformed, err: ErrMalformed, msg: "server_name"},
		{name: "two host_names", wire: one(sniExt(hostName(0, "a.test"), hostName(0, "b.test"))),
			st: Malformed, err: ErrMalformed, msg: "more than one host_name"},
		{name: "empty host_name", wire: one(sniExt(hostName(0, ""))), st: Malformed, msg: "empty entry"},
		{name: "empty server_name list", wire: one(ext{extServerName, []byte{0, 0}}), st: Malformed, msg: "ServerNameList"},
		{name: "duplicate server_name", wire: one(sni("a.test"), sni("b.test")), st: Malformed, msg: "duplicate extension 0x0000"},
		{name: "duplicate ALPN", wire: one(alpnExt("h2"), alpnExt("h2")), st: Malformed, msg: "duplicate extension 0x0010"},
		{name: "empty ALPN protocol", wire: one(alpnExt("h2", "")), st: Malformed, msg: "empty protocol name"},
		{name: "odd supported_versions", wire: one(ext{extSupportedVersions, []byte{3, 3, 4, 3}}), st: Malformed, msg: "supported_versions"},
		{name: "not a handshake record", wire: []byte{0x15, 3, 1, 0, 2, 2, 40}, st: Malformed, msg: "record type 21"},
		{name: "SSLv2 compatible hello", wire: []byte{0x80, 0x2e, 1, 3, 1}, st: Malformed, msg: "record type 128"},
		{name: "record major version", wire: []byte{0x16, 2}, st: Malformed, msg: "major version 2"},
		{name: "empty record", wire: []byte{0x16, 3, 1, 0, 0}, st: Malformed, msg: "empty handshake record"},
		{name: "record over 2^14", wire: []byte{0x16, 3, 1, 0x40, 1}, st: Malformed, msg: "exceeds 2^14"},
		{name: "ServerHello", wire: []byte{0x16, 3, 3, 0, 4, 2, 0, 0, 0}, st: Malformed, msg: "type 2 is not ClientHello"},
		{name: "over the handshake limit", wire: inRecords(big, 1<<14), max: 32 << 10, st: Malformed, err: ErrTooLarge},
		{name: "over the default limit", wire: []byte{0x16, 3, 1, 0, 4, 1, 1, 0, 1}, st: Malformed, err: ErrTooLarge},
		{name: "one byte over the default limit", wire: []byte{0x16, 3, 1, 0, 4, 1, 0, 0x40, 1}, st: Malformed, err: ErrTooLarge,
			msg: "16384-byte limit"},
		{name: "40 KiB hello over the default limit", wire: inRecords(big, 1<<14), st: Malformed, err: ErrTooLarge},
		{name: "hello in 33 records", wire: inNRecords(small, 33), st: Malformed, err: ErrTooManyRecords,
			msg: "more than 32 records"},
		{name: "one-byte records refused at the 33rd header", wire: inRecords(small, 1)[:33*6-1], st: Malformed,
			err: ErrTooManyRecords},
		{name: "message and more in one record", wire: sameRecordWire, st: Malformed, msg: "follow the ClientHello"},
		{name: "truncated body", wire: inRecords([]byte{1, 0, 0, 3, 3, 3, 0}, 100), st: Malformed, msg: "truncated before"},
		{name: "long session id", wire: inRecords(patch(helloMsg(nil), 38, 33), 1000), st: Malformed},
		{name: "extensions length mismatch", wire: inRecords(patch(helloMsg([]ext{sni("a.test")}), 80, 0xff), 1000),
			st: Malformed, msg: "extensions"},
		{name: "header only", wire: []byte{0x16, 3, 1, 0}, st: NeedMore},
		{name: "record body partly", wire: basic[:20], st: NeedMore},
	}
}

// patch returns a copy of b with b[i] = v.
func patch(b []byte, i int, v byte) []byte {
	b = slices.Clone(b)
	b[i] = v
	return b
}

func TestParseClientHelloCases(t *testing.T) {
	for _, tc := range malformedHelloCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			res, st, err := ParseClientHello(tc.wire, tc.max)
			if st != tc.st {
				t.Fatalf("status = %v (%v); want %v", st, err, tc.st)
			}
			if (err != nil) != (st == Malformed) {
				t.Fatalf("error %v with status %v", err, st)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("error %v does not wrap %v", err, tc.err)
			}
			if st == Malformed && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Errorf("error %v wraps neither ErrMalformed nor ErrTooLarge", err)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if res.Kind != KindTLS {
				t.Errorf("kind = %v", res.Kind)
			}
			if tc.check != nil && !tc.check(res) {
				t.Errorf("result %+v fails the case's check", res)
			}
		})
	}
}

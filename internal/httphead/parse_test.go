package httphead

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

type httpWant struct {
	name    string
	addr    string
	port    uint16
	method  string
	version string
	connect bool
	h2      bool
}

// TestParseHTTP: what Parse makes of a request head (method, target, host,
// version, CONNECT, the h2 preface), its length, and each malformed or
// oversized head refused. It was sni.TestParseHTTP before the head parser
// moved here.
func TestParseHTTP(t *testing.T) {
	const h11 = "HTTP/1.1"
	cases := []struct {
		name  string
		in    string
		limit int
		st    Status
		err   error  // sentinel the error must wrap
		msg   string // substring of the error
		want  httpWant
	}{
		{name: "origin-form", in: "GET /x HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", method: "GET", version: h11}},
		{name: "Host with port, OWS, case", in: "POST / HTTP/1.1\r\nhOST: \t WWW.Example.Test.:8080 \r\n\r\nbody", st: Done,
			want: httpWant{name: "www.example.test", port: 8080, method: "POST", version: h11}},
		{name: "extension method", in: "PROPFIND / HTTP/1.1\r\nHost: example.test\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", method: "PROPFIND", version: h11}},
		{name: "IPv4 Host", in: "GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n", st: Done,
			want: httpWant{addr: "192.0.2.1", method: "GET", version: h11}},
		{name: "inet_aton Host", in: "GET / HTTP/1.1\r\nHost: 0x7f.1:81\r\n\r\n", st: Done,
			want: httpWant{addr: "127.0.0.1", port: 81, method: "GET", version: h11}},
		{name: "bracketed IPv6 Host", in: "GET / HTTP/1.1\r\nHost: [2001:DB8::1]:8443\r\n\r\n", st: Done,
			want: httpWant{addr: "2001:db8::1", port: 8443, method: "GET", version: h11}},
		{name: "HTTP/1.0 without Host", in: "GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n", st: Done,
			want: httpWant{method: "GET", version: "HTTP/1.0"}},
		{name: "HTTP/1.0 absolute-form without Host", in: "GET http://example.test:8080/ HTTP/1.0\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", port: 8080, method: "GET", version: "HTTP/1.0"}},
		{name: "absolute-form agrees", in: "GET HTTP://Example.test/a?b HTTP/1.1\r\nHost: example.test\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", method: "GET", version: h11}},
		{name: "absolute-form default port agrees", in: "GET https://example.test:443 HTTP/1.1\r\nHost: example.test\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", port: 443, method: "GET", version: h11}},
		{name: "absolute-form Host default port agrees", in: "GET http://example.test/ HTTP/1.1\r\nHost: example.test:80\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", port: 80, method: "GET", version: h11}},
		{name: "CONNECT", in: "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", port: 443, method: "CONNECT", version: h11, connect: true}},
		{name: "OPTIONS asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: example.test\r\n\r\n", st: Done,
			want: httpWant{name: "example.test", method: "OPTIONS", version: h11}},
		{name: "HTTP/2 preface", in: Preface + "\x00\x00\x00\x04", st: Done,
			want: httpWant{method: "PRI", version: "HTTP/2.0", h2: true}},
		{name: "pipelined: the first head only", in: "GET /a HTTP/1.1\r\nHost: a.example\r\n\r\nGET /b HTTP/1.1\r\nHost: b.example\r\n\r\n", st: Done,
			want: httpWant{name: "a.example", method: "GET", version: h11}},
		{name: "partial preface", in: "PRI * HTTP/2.0\r\n\r\n", st: NeedMore},
		{name: "partial request line", in: "GET / HTT", st: NeedMore},
		{name: "partial headers", in: "GET / HTTP/1.1\r\nHost: example.test\r\n", st: NeedMore},
		{name: "partial CRLF", in: "GET / HTTP/1.1\r\nHost: example.test\r\n\r", st: NeedMore},

		{name: "duplicate Host", in: "GET / HTTP/1.1\r\nHost: a.test\r\nHOST: a.test\r\n\r\n", st: Malformed, msg: "duplicate Host header"},
		{name: "HTTP/1.1 without Host", in: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", st: Malformed, msg: "without Host"},
		{name: "empty Host", in: "GET / HTTP/1.1\r\nHost: \r\n\r\n", st: Malformed, msg: "empty host"},
		{name: "absolute-form host mismatch", in: "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", st: Malformed,
			msg: "absolute-form host a.example does not match Host b.example"},
		{name: "absolute-form port mismatch", in: "GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed,
			msg: "a.example:8080 does not match Host a.example"},
		{name: "absolute-form literal vs name", in: "GET http://127.0.0.1/ HTTP/1.1\r\nHost: localhost\r\n\r\n", st: Malformed, msg: "does not match"},
		{name: "absolute-form userinfo", in: "GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "userinfo"},
		{name: "absolute-form ftp", in: "GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "scheme"},
		{name: "target without slash", in: "GET a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "not origin-"},
		{name: "asterisk with GET", in: "GET * HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "asterisk-form"},
		{name: "CONNECT without port", in: "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "has no port"},
		{name: "CONNECT mismatch", in: "CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", st: Malformed,
			msg: "CONNECT host a.example:443 does not match Host b.example:443"},
		{name: "PRI outside preface", in: "PRI / HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "PRI method"},
		{name: "unbracketed IPv6", in: "GET / HTTP/1.1\r\nHost: 2001:db8::1\r\n\r\n", st: Malformed, msg: "without brackets"},
		{name: "bracketed name", in: "GET / HTTP/1.1\r\nHost: [a.example]\r\n\r\n", st: Malformed},
		{name: "Host userinfo", in: "GET / HTTP/1.1\r\nHost: u:p@a.example\r\n\r\n", st: Malformed, msg: "userinfo"},
		{name: "port 0", in: "GET / HTTP/1.1\r\nHost: a.example:0\r\n\r\n", st: Malformed, msg: "out of range"},
		{name: "port 65536", in: "GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n", st: Malformed, msg: "out of range"},
		{name: "empty port", in: "GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n", st: Malformed, msg: "1-5 digits"},
		{name: "signed port", in: "GET / HTTP/1.1\r\nHost: a.example:+80\r\n\r\n", st: Malformed, msg: "not decimal"},
		{name: "space in Host", in: "GET / HTTP/1.1\r\nHost: a.example b.example\r\n\r\n", st: Malformed},
		{name: "bad IPv4 Host", in: "GET / HTTP/1.1\r\nHost: 256.1.1.1\r\n\r\n", st: Malformed},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: a.example\r\nX: a\r\n b\r\n\r\n", st: Malformed, msg: "line folding"},
		{name: "folded Host", in: "GET / HTTP/1.1\r\nHost:\r\n a.example\r\n\r\n", st: Malformed},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", st: Malformed, msg: "not a token"},
		{name: "bare LF", in: "GET / HTTP/1.1\nHost: a.example\n\n", st: Malformed, msg: "bare LF"},
		{name: "bare CR", in: "GET / HTTP/1.1\r\nHost: a.example\rX: y\r\n\r\n", st: Malformed, msg: "bare CR"},
		{name: "NUL in value", in: "GET / HTTP/1.1\r\nHost: a.example\r\nX: a\x00b\r\n\r\n", st: Malformed, msg: "control byte"},
		{name: "double space", in: "GET  / HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "request-target"},
		{name: "tab separator", in: "GET\t/ HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "method token"},
		{name: "leading empty line", in: "\r\nGET / HTTP/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "empty line"},
		{name: "HTTP/0.9", in: "GET /\r\n", st: Malformed, msg: "request-target"},
		{name: "HTTP/1.2", in: "GET / HTTP/1.2\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "unsupported HTTP version"},
		{name: "lower-case version", in: "GET / http/1.1\r\nHost: a.example\r\n\r\n", st: Malformed, msg: "unsupported HTTP version"},
		{name: "header without colon", in: "GET / HTTP/1.1\r\nHost a.example\r\n\r\n", st: Malformed, msg: "without a colon"},
		{name: "head over limit", in: "GET / HTTP/1.1\r\nHost: a.example\r\nX: " + strings.Repeat("a", 100), limit: 64,
			st: Malformed, err: ErrTooLarge},
		{name: "head one byte over limit", in: "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", limit: 34, st: Malformed, err: ErrTooLarge},
		{name: "head ends at limit", in: "GET / HTTP/1.1\r\nHost: a.example\r\n\r\nbody beyond the limit", limit: 35, st: Done,
			want: httpWant{name: "a.example", method: "GET", version: h11}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, st, err := Parse([]byte(tc.in), tc.limit)
			if st != tc.st || (err != nil) != (st == Malformed) {
				t.Fatalf("status = %v, %v; want %v", st, err, tc.st)
			}
			if st == Malformed {
				checkHTTPError(t, err, tc.err, tc.msg)
				return
			}
			if st != Done {
				return
			}
			got := wantOf(res)
			if got != tc.want {
				t.Errorf("result = %+v; want %+v", got, tc.want)
			}
			if wantLen := headLen(tc.in); res.Len != wantLen {
				t.Errorf("Len = %d; want %d (the head through its empty line)", res.Len, wantLen)
			}
			if tc.want.addr != "" && res.Addr != netip.MustParseAddr(tc.want.addr) {
				t.Errorf("addr = %v; want %v", res.Addr, tc.want.addr)
			}
		})
	}
}

// wantOf is the part of a Head the cases compare.
func wantOf(h Head) httpWant {
	w := httpWant{h.Name, "", h.Port, h.Method, h.Version, h.CONNECT, h.H2Preface}
	if h.Addr.IsValid() {
		w.addr = h.Addr.String()
	}
	return w
}

// headLen finds the end of the head in s without the code under test: the
// preface, or the first empty line.
func headLen(s string) int {
	if strings.HasPrefix(s, Preface) {
		return len(Preface)
	}
	return strings.Index(s, "\r\n\r\n") + 4
}

func checkHTTPError(t *testing.T, err, sentinel error, msg string) {
	t.Helper()
	if sentinel == nil {
		sentinel = ErrMalformed
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("error %v does not wrap %v", err, sentinel)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not mention %q", err, msg)
	}
}

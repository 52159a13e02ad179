package sni

import (
	"errors"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/httphead"
)

func TestSniff(t *testing.T) {
	cases := []struct {
		name string
		in   string
		kind Kind
		st   Status
	}{
		{"empty", "", KindUnknown, NeedMore},
		{"TLS first byte", "\x16", KindTLS, NeedMore},
		{"TLS", "\x16\x03\x01", KindTLS, Done},
		{"0x16 then not TLS", "\x16\x04", KindUnknown, Done},
		{"method so far", "GE", KindUnknown, NeedMore},
		{"GET", "GET ", KindHTTP, Done},
		{"preface", "PRI * HTTP/2.0", KindHTTP, Done},
		{"leading space", " GET", KindUnknown, Done},
		{"SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", KindUnknown, Done},
		{"token too long", strings.Repeat("A", 40), KindUnknown, Done},
		{"binary", "\x00\x01", KindUnknown, Done},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if k, st := Sniff([]byte(tc.in)); k != tc.kind || st != tc.st {
				t.Errorf("Sniff(%q) = %v, %v; want %v, %v", tc.in, k, st, tc.kind, tc.st)
			}
		})
	}
}

// TestParseHTTPHeads checks what Parse makes of a request head, which
// internal/httphead reads: the destination, the head's fields, the status,
// and the sentinels the data path tells its refusals by (ErrTooLarge is
// head_too_large, ErrMalformed a malformed request).
func TestParseHTTPHeads(t *testing.T) {
	const connect = "CONNECT a.example:8443 HTTP/1.1\r\nHost: a.example:8443\r\n\r\n"
	cases := []struct {
		name    string
		in      string
		st      Status
		err     error // the sentinel of this package the error must wrap
		headErr error // and httphead's
		host    string
		port    uint16
		method  string
		connect bool
		h2      bool
		version string
	}{
		{name: "name and port", in: "GET / HTTP/1.1\r\nHost: WWW.Example.test:8080\r\n\r\nbody", st: Done,
			host: "www.example.test", port: 8080, method: "GET", version: "HTTP/1.1"},
		{name: "IP literal", in: "GET / HTTP/1.1\r\nHost: 0x7f.1\r\n\r\n", st: Done, host: "127.0.0.1", method: "GET", version: "HTTP/1.1"},
		{name: "CONNECT", in: connect, st: Done, host: "a.example", port: 8443, method: "CONNECT", connect: true, version: "HTTP/1.1"},
		{name: "HTTP/2 preface", in: httphead.Preface, st: Done, method: "PRI", h2: true, version: "HTTP/2.0"},
		{name: "partial", in: "GET / HTTP/1.1\r\nHost: a.example\r\n", st: NeedMore},
		{name: "malformed", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", st: Malformed, method: "GET",
			err: ErrMalformed, headErr: httphead.ErrMalformed},
		{name: "over the head limit", in: "GET / HTTP/1.1\r\nHost: a.example\r\nX: " + strings.Repeat("a", 100), st: Malformed,
			method: "GET", err: ErrTooLarge, headErr: httphead.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, st, err := Parse([]byte(tc.in), 0, 64)
			if st != tc.st || res.Kind != KindHTTP {
				t.Fatalf("Parse = %v, %v (kind %v); want %v", st, err, res.Kind, tc.st)
			}
			if tc.err == nil && err != nil || tc.err != nil && (!errors.Is(err, tc.err) || !errors.Is(err, tc.headErr)) {
				t.Fatalf("error %v; want one that wraps %v and %v", err, tc.err, tc.headErr)
			}
			if tc.err == ErrMalformed && errors.Is(err, ErrTooLarge) || tc.err == ErrTooLarge && errors.Is(err, ErrMalformed) {
				t.Errorf("error %v wraps both ErrMalformed and ErrTooLarge", err)
			}
			if res.Host() != tc.host || res.Port != tc.port {
				t.Errorf("destination %q port %d; want %q port %d", res.Host(), res.Port, tc.host, tc.port)
			}
			if res.HTTPMethod != tc.method || res.CONNECT != tc.connect || res.H2Preface != tc.h2 || tc.st == Done && res.HTTPVersion != tc.version {
				t.Errorf("result = %+v; want method %q, version %q, CONNECT %v, preface %v", res, tc.method, tc.version, tc.connect, tc.h2)
			}
		})
	}
}

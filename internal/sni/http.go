package sni

import (
	"bytes"
	"fmt"
)

// h2Preface is the HTTP/2 prior-knowledge connection preface (RFC 9113 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ParseHTTP parses an HTTP/1.x request head (request line and header
// fields up to the empty line) at the start of b and reports the host it
// targets. The head must end within limit bytes (DefaultMaxHTTPHead when
// <= 0), or the status is Malformed with ErrTooLarge; bytes after the head
// (a body) are not examined.
//
// The parser is deliberately stricter than RFC 9112 allows recipients to
// be, because a firewall and the server behind it must not disagree about
// the target: lines must end in CRLF (bare CR or LF is malformed), no
// empty lines before the request line, single spaces in the request line,
// no obs-fold, no whitespace before a header colon, no control bytes,
// exactly one Host header (required for HTTP/1.1, non-empty), and an
// absolute-form or CONNECT target must agree with Host in host and port.
// HTTP/1.0 without Host and origin-form is Done with no name. CONNECT sets
// Result.CONNECT and names its target; the HTTP/2 preface sets H2Preface
// and names nothing.
func ParseHTTP(b []byte, limit int) (Result, Status, error) {
	if limit <= 0 {
		limit = DefaultMaxHTTPHead
	}
	r := Result{Kind: KindHTTP}
	head := b[:min(len(b), limit)]
	if n := min(len(head), len(h2Preface)); string(head[:n]) == h2Preface[:n] {
		if n < len(h2Preface) {
			return tooLargeOr(r, NeedMore, nil, len(b), limit)
		}
		r.HTTPMethod, r.HTTPVersion, r.H2Preface = "PRI", "HTTP/2.0", true
		return r, Done, nil
	}
	line, rest, st, err := nextLine(head)
	if st != Done {
		return tooLargeOr(r, st, err, len(b), limit)
	}
	target, err := parseRequestLine(&r, line)
	if err != nil {
		return r, Malformed, err
	}
	host, hasHost, st, err := scanHeaders(rest)
	if st != Done {
		return tooLargeOr(r, st, err, len(b), limit)
	}
	if err := resolveTarget(&r, target, host, hasHost); err != nil {
		return r, Malformed, err
	}
	return r, Done, nil
}

// malformedHTTP builds a specific reason wrapping ErrMalformed.
func malformedHTTP(format string, args ...any) error {
	return fmt.Errorf("%w: http: "+format, append([]any{ErrMalformed}, args...)...)
}

// tooLargeOr turns NeedMore into ErrTooLarge once n input bytes reach the
// limit without completing the head.
func tooLargeOr(r Result, st Status, err error, n, limit int) (Result, Status, error) {
	if st == NeedMore && n >= limit {
		return r, Malformed, fmt.Errorf("%w: http: request head does not end within %d bytes", ErrTooLarge, limit)
	}
	return r, st, err
}

// nextLine splits off one CRLF-terminated line. A line without its LF yet
// is NeedMore; an LF without CR, or a CR elsewhere, is malformed.
func nextLine(b []byte) (line, rest []byte, st Status, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if j := bytes.IndexByte(b, '\r'); j >= 0 && j < len(b)-1 {
			return nil, nil, Malformed, malformedHTTP("bare CR in request head")
		}
		return nil, nil, NeedMore, nil
	}
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, Malformed, malformedHTTP("bare LF in request head")
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, Malformed, malformedHTTP("bare CR in request head")
	}
	return line, b[i+1:], Done, nil
}

// parseRequestLine checks "method SP request-target SP HTTP-version",
// fills the method and version, and returns the target.
func parseRequestLine(r *Result, line []byte) ([]byte, error) {
	if len(line) == 0 {
		return nil, malformedHTTP("empty line before the request line")
	}
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(method) == 0 || !allIn(method, &tcharTable) {
		return nil, malformedHTTP("request line does not start with a method token and one space")
	}
	target, version, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(target) == 0 {
		return nil, malformedHTTP("request line has no request-target between single spaces")
	}
	if !allIn(target, &targetTable) {
		return nil, malformedHTTP("request-target contains whitespace or control bytes")
	}
	switch string(version) {
	case "HTTP/1.1":
		r.HTTPVersion = "HTTP/1.1"
	case "HTTP/1.0":
		r.HTTPVersion = "HTTP/1.0"
	default:
		return nil, malformedHTTP("unsupported HTTP version %q", truncate(version))
	}
	r.HTTPMethod = methodString(method)
	if r.HTTPMethod == "PRI" {
		return nil, malformedHTTP("PRI method outside the HTTP/2 preface")
	}
	return target, nil
}

// scanHeaders checks every header line up to the empty line and returns
// the value of the single Host header, if any.
func scanHeaders(b []byte) (host []byte, hasHost bool, st Status, err error) {
	for {
		var line []byte
		line, b, st, err = nextLine(b)
		if st != Done {
			return nil, false, st, err
		}
		if len(line) == 0 {
			return host, hasHost, Done, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, false, Malformed, malformedHTTP("obsolete line folding in header section")
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		switch {
		case !ok:
			return nil, false, Malformed, malformedHTTP("header line without a colon")
		case len(name) == 0:
			return nil, false, Malformed, malformedHTTP("header line with an empty field name")
		case !allIn(name, &tcharTable):
			return nil, false, Malformed, malformedHTTP("header field name %q is not a token (whitespace before colon?)", truncate(name))
		}
		value = trimOWS(value)
		if !allIn(value, &valueTable) {
			return nil, false, Malformed, malformedHTTP("header %q has a control byte in its value", truncate(name))
		}
		if asciiEqualFold(name, "host") {
			if hasHost {
				return nil, false, Malformed, malformedHTTP("duplicate Host header")
			}
			host, hasHost = value, true
		}
	}
}

// trimOWS strips optional whitespace (SP, HTAB) around a field value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// methodString returns common methods without allocating.
func methodString(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	case "CONNECT":
		return "CONNECT"
	}
	return string(m)
}

// truncate shortens untrusted bytes quoted in an error message.
func truncate(b []byte) []byte {
	return b[:min(len(b), 64)]
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

func allIn(b []byte, table *[256]bool) bool {
	for _, c := range b {
		if !table[c] {
			return false
		}
	}
	return true
}

var (
	// tcharTable is RFC 9110 tchar: method and field-name bytes.
	tcharTable = byteTable(func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
	})
	// targetTable allows visible ASCII and obs-text in a request-target.
	targetTable = byteTable(func(c byte) bool { return c > ' ' && c != 0x7f })
	// valueTable is field-vchar, SP and HTAB (RFC 9110 field-value).
	valueTable = byteTable(func(c byte) bool { return c >= ' ' && c != 0x7f || c == '\t' })
)

func byteTable(f func(byte) bool) (t [256]bool) {
	for c := range 256 {
		t[c] = f(byte(c))
	}
	return t
}

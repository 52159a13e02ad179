package httphead

import "bytes"

// parseRequestLine checks "method SP request-target SP HTTP-version",
// fills the method and version, and returns the target.
func parseRequestLine(r *Head, line []byte) ([]byte, error) {
	if len(line) == 0 {
		return nil, malformed("empty line before the request line")
	}
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(method) == 0 || !allIn(method, &tcharTable) {
		return nil, malformed("request line does not start with a method token and one space")
	}
	target, version, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(target) == 0 {
		return nil, malformed("request line has no request-target between single spaces")
	}
	if !allIn(target, &targetTable) {
		return nil, malformed("request-target contains whitespace or control bytes")
	}
	switch string(version) {
	case "HTTP/1.1":
		r.Version = "HTTP/1.1"
	case "HTTP/1.0":
		r.Version = "HTTP/1.0"
	default:
		return nil, malformed("unsupported HTTP version %q", truncate(version))
	}
	r.Method = methodString(method)
	if r.Method == "PRI" {
		return nil, malformed("PRI method outside the HTTP/2 preface")
	}
	return target, nil
}

// headerField checks one header line and returns its name and its value
// without surrounding whitespace.
func headerField(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, malformed("obsolete line folding in header section")
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	switch {
	case !ok:
		return nil, nil, malformed("header line without a colon")
	case len(name) == 0:
		return nil, nil, malformed("header line with an empty field name")
	case !allIn(name, &tcharTable):
		return nil, nil, malformed("header field name %q is not a token (whitespace before colon?)", truncate(name))
	}
	value = trimOWS(value)
	if !allIn(value, &valueTable) {
		return nil, nil, malformed("header %q has a control byte in its value", truncate(name))
	}
	return name, value, nil
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

// TokenChar reports whether c may appear in a method or a header field
// name (an RFC 9110 tchar).
func TokenChar(c byte) bool { return tcharTable[c] }

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

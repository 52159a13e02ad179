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
	return newHeadParser(limit).parse(b)
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

// headParser reads a request head as it arrives. It is fed the growing
// buffer of the bytes read so far and remembers where its search for the
// end of the current line stopped, so each byte is examined a bounded
// number of times however the bytes are split into reads; each line is
// checked once, when its CRLF is in.
type headParser struct {
	limit     int
	res       Result
	preface   int // leading bytes that match the HTTP/2 preface; -1 once they do not
	line      int // start of the current line
	scan      int // where the search for its LF continues
	inHeaders bool
	target    span // the request-target, once the request line is in
	host      span // the Host value, if hasHost
	hasHost   bool
	work      int // bytes examined, for the linear-work tests
}

// span is where a field lies in the buffer: the parser keeps offsets, not
// slices, because the caller may move the buffer when it grows.
type span struct{ start, end int }

// spanOf returns where s, resliced from b (sharing its end of capacity), lies in b.
func spanOf(b, s []byte) span {
	start := cap(b) - cap(s)
	return span{start, start + len(s)}
}

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

func newHeadParser(limit int) *headParser {
	return &headParser{limit: limit, res: Result{Kind: KindHTTP}}
}

// parse continues with b, which extends every buffer passed before.
func (p *headParser) parse(b []byte) (Result, Status, error) {
	head := b[:min(len(b), p.limit)]
	if p.preface >= 0 {
		switch p.matchPreface(head) {
		case Done:
			p.res.HTTPMethod, p.res.HTTPVersion, p.res.H2Preface = "PRI", "HTTP/2.0", true
			return p.res, Done, nil
		case NeedMore:
			return tooLargeOr(p.res, NeedMore, nil, len(b), p.limit)
		}
	}
	for {
		line, st, err := p.nextLine(head)
		if st != Done {
			return tooLargeOr(p.res, st, err, len(b), p.limit)
		}
		p.work += len(line)
		if err := p.takeLine(head, line); err != nil {
			return p.res, Malformed, err
		}
		if len(line) == 0 && p.inHeaders {
			target, host := p.target.of(b), p.host.of(b)
			p.work += len(target) + len(host)
			if err := resolveTarget(&p.res, target, host, p.hasHost); err != nil {
				return p.res, Malformed, err
			}
			return p.res, Done, nil
		}
	}
}

// matchPreface compares the bytes not compared yet with the HTTP/2
// preface: Done once all of it matched, NeedMore while the head may still
// be it, Malformed (meaning only "not the preface") otherwise.
func (p *headParser) matchPreface(head []byte) Status {
	n := min(len(head), len(h2Preface))
	for ; p.preface < n; p.preface++ {
		p.work++
		if head[p.preface] != h2Preface[p.preface] {
			p.preface = -1
			return Malformed
		}
	}
	if n == len(h2Preface) {
		return Done
	}
	return NeedMore
}

// takeLine checks a complete line: the request line first, then header
// fields; the empty line after the request line ends the head.
func (p *headParser) takeLine(head, line []byte) error {
	if !p.inHeaders {
		target, err := parseRequestLine(&p.res, line)
		if err != nil {
			return err
		}
		p.target, p.inHeaders = spanOf(head, target), true
		return nil
	}
	if len(line) == 0 {
		return nil
	}
	name, value, err := headerField(line)
	if err != nil {
		return err
	}
	if asciiEqualFold(name, "host") {
		if p.hasHost {
			return malformedHTTP("duplicate Host header")
		}
		p.host, p.hasHost = spanOf(head, value), true
	}
	return nil
}

// nextLine returns the next CRLF-terminated line, without the CRLF, once
// its LF is in; it searches only bytes it has not searched before. An LF
// without CR, or a CR anywhere but before an LF, is malformed (a CR that is
// the last byte so far is judged when the next byte comes).
func (p *headParser) nextLine(head []byte) ([]byte, Status, error) {
	i := bytes.IndexByte(head[p.scan:], '\n')
	end := len(head)
	if i >= 0 {
		end = p.scan + i
	}
	from := max(p.line, p.scan-1) // the last byte of the previous search may be a CR
	p.work += end - p.scan + end - from
	if j := bytes.IndexByte(head[from:end], '\r'); j >= 0 && from+j != end-1 {
		return nil, Malformed, malformedHTTP("bare CR in request head")
	}
	if i < 0 {
		p.scan = len(head)
		return nil, NeedMore, nil
	}
	if end == p.line || head[end-1] != '\r' {
		return nil, Malformed, malformedHTTP("bare LF in request head")
	}
	line := head[p.line : end-1]
	p.line, p.scan = end+1, end+1
	return line, Done, nil
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

// headerField checks one header line and returns its name and its value
// without surrounding whitespace.
func headerField(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, malformedHTTP("obsolete line folding in header section")
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	switch {
	case !ok:
		return nil, nil, malformedHTTP("header line without a colon")
	case len(name) == 0:
		return nil, nil, malformedHTTP("header line with an empty field name")
	case !allIn(name, &tcharTable):
		return nil, nil, malformedHTTP("header field name %q is not a token (whitespace before colon?)", truncate(name))
	}
	value = trimOWS(value)
	if !allIn(value, &valueTable) {
		return nil, nil, malformedHTTP("header %q has a control byte in its value", truncate(name))
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

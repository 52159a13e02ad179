package httphead

import (
	"errors"
	"fmt"
	"net/netip"
)

// DefaultMaxHead is the limit on a request head's size (request line and
// header fields, through the empty line) used when a limit is <= 0.
const DefaultMaxHead = 16 << 10

// Preface is the HTTP/2 prior-knowledge connection preface (RFC 9113 3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Status says whether the parser needs more input, finished, or gave up.
type Status int

// Statuses returned by Parse and Parser.Parse.
const (
	NeedMore  Status = iota // the input is a valid prefix of a head; read more bytes and call again
	Done                    // the head is complete; bytes after it are not examined
	Malformed               // the input can never become a valid head; the error says why
)

// String returns a short lower-case name for logs.
func (s Status) String() string {
	switch s {
	case NeedMore:
		return "need-more"
	case Done:
		return "done"
	}
	return "malformed"
}

// Errors the parser wraps; match them with errors.Is. Each returned error
// carries a specific reason (such as "duplicate Host header") suitable for
// logging as the cause of a refusal.
var (
	// ErrMalformed marks a head that violates the protocol.
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge marks a head that does not end within the limit. It is
	// reported with Status Malformed.
	ErrTooLarge = errors.New("too large")
)

// Head is what a request head says about its destination. Name and Addr
// are mutually exclusive; both are empty when the request names no host
// (HTTP/1.0 in origin-form without Host, the HTTP/2 preface).
type Head struct {
	// Method is the request method, e.g. "GET" ("PRI" for the preface).
	Method string
	// Version is "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0" (preface only).
	Version string
	// Name is the normalised DNS name (see dnsname.Normalize).
	Name string
	// Addr is set instead of Name when the host was an IP literal.
	Addr netip.Addr
	// Port is the explicit port of the Host header, absolute-form or
	// CONNECT target; 0 when none was given.
	Port uint16
	// CONNECT reports a CONNECT request; Name/Addr/Port are its target.
	CONNECT bool
	// H2Preface reports the HTTP/2 prior-knowledge preface, which names no
	// host in plain text: Name and Addr are empty.
	H2Preface bool
	// Len is the length of the head through its empty line (of the preface
	// for H2Preface) once the head is Done, else 0: a body or the next
	// request starts there.
	Len int
}

// Host returns Name or, for an IP literal, the address in text form.
func (h *Head) Host() string {
	if h.Addr.IsValid() {
		return h.Addr.String()
	}
	return h.Name
}

// Parse parses the request head at the start of b and reports the host it
// targets. The head must end within limit bytes (DefaultMaxHead when <= 0),
// or the status is Malformed with ErrTooLarge; bytes after the head (a body,
// a pipelined request) are not examined. The Head is complete when the
// status is Done; it is zero with NeedMore, and with Malformed holds what
// was read before the fault (the method and version, once the request line
// is in).
//
// Lines must end in CRLF (a bare CR or LF is malformed); there are no empty
// lines before the request line, single spaces in the request line, no
// obs-fold, no whitespace before a header colon, no control bytes in a
// value, exactly one Host header (required for HTTP/1.1, non-empty), and an
// absolute-form or CONNECT target must agree with Host in host and port.
// HTTP/1.0 in origin-form without Host is Done with no name. CONNECT sets
// Head.CONNECT and names its target; the HTTP/2 preface sets H2Preface and
// names nothing.
func Parse(b []byte, limit int) (Head, Status, error) {
	return NewParser(limit).Parse(b)
}

// malformed builds a specific reason wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: http: "+format, append([]any{ErrMalformed}, args...)...)
}

// tooLargeOr turns NeedMore into ErrTooLarge once n input bytes reach the
// limit without completing the head.
func tooLargeOr(st Status, err error, n, limit int) (Status, error) {
	if st == NeedMore && n >= limit {
		return Malformed, fmt.Errorf("%w: http: request head does not end within %d bytes", ErrTooLarge, limit)
	}
	return st, err
}

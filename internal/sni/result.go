package sni

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/egressfw/egressfw/internal/httphead"
)

// Default limits, used when the corresponding option or argument is <= 0.
// Post-quantum and ECH ClientHellos are 1.5-2 KiB; 16 KiB is where other
// TLS peekers settled. Real clients send the ClientHello in one record
// (two only above 2^14 bytes); 32 records still admit a 2 KiB hello cut
// into 64-byte records, as some anti-censorship tools do, while a hello
// dripped in one-byte records is refused after 32 bytes.
// The limit on an HTTP request head is httphead.DefaultMaxHead.
const (
	DefaultMaxHandshake    = 16 << 10 // largest ClientHello handshake message accepted
	DefaultMaxHelloRecords = 32       // most TLS records a ClientHello may span
)

// Kind is the protocol a connection's first bytes belong to.
type Kind int

// Kinds reported by Sniff and in Result.Kind.
const (
	KindUnknown Kind = iota // neither a TLS handshake nor an HTTP/1.x request
	KindTLS                 // a TLS handshake record
	KindHTTP                // an HTTP/1.x request (or the HTTP/2 preface)
)

// String returns a short lower-case name for logs.
func (k Kind) String() string {
	switch k {
	case KindTLS:
		return "tls"
	case KindHTTP:
		return "http"
	}
	return "unknown"
}

// Status says whether a parser needs more input, finished, or gave up. It
// is httphead's: a connection's first bytes are a ClientHello or a request
// head, and both parsers answer alike.
type Status = httphead.Status

// Statuses returned by the parsers.
const (
	NeedMore  = httphead.NeedMore  // the input is a valid prefix; read more bytes and call again
	Done      = httphead.Done      // the result is complete; bytes after it are not examined
	Malformed = httphead.Malformed // the input can never become valid; the error says why
)

// Errors the parsers and Peek wrap; match them with errors.Is. Each returned
// error carries a specific reason (such as "duplicate Host header") suitable
// for logging as the cause of a policy decision.
//
// An HTTP request head's error also wraps httphead.ErrMalformed or
// httphead.ErrTooLarge, and matches ErrMalformed or ErrTooLarge as well.
var (
	// ErrMalformed marks input that violates the protocol.
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge marks input exceeding a configured limit (handshake
	// message size, HTTP head size, records per ClientHello). Parsers report
	// it with Status Malformed.
	ErrTooLarge = errors.New("too large")
	// ErrTooManyRecords marks a ClientHello spread over more TLS records
	// than allowed. It also wraps ErrTooLarge.
	ErrTooManyRecords = fmt.Errorf("%w: too many records", ErrTooLarge)
	// ErrIPLiteralSNI marks a server_name that is an IP literal, which RFC
	// 6066 forbids. It also wraps ErrMalformed; the Result still carries the
	// address in Addr for a caller that wants to be lenient.
	ErrIPLiteralSNI = errors.New("SNI host_name is an IP literal")
	// ErrUnknownProtocol marks first bytes that are neither TLS nor HTTP/1.x.
	ErrUnknownProtocol = errors.New("unknown protocol")
	// ErrTimeout marks a Peek whose deadline passed before a result.
	ErrTimeout = errors.New("timed out waiting for the first bytes")
	// ErrTruncated marks a connection closed by the peer before a result.
	ErrTruncated = errors.New("connection closed before the request was complete")
)

// Result is what the first bytes of a connection say about its destination.
// Name and Addr are mutually exclusive; both are empty when the client did
// not name a host (a ClientHello without server_name, HTTP/1.0 without Host).
type Result struct {
	Kind Kind
	// Name is the normalised DNS name (see dnsname.Normalize).
	Name string
	// Addr is set instead of Name when the host was an IP literal.
	Addr netip.Addr
	// Port is the explicit port of an HTTP Host header, absolute-form or
	// CONNECT target; 0 when none was given (TLS never carries one).
	Port uint16

	// ALPN lists the ClientHello's application protocols in order.
	ALPN []string
	// LegacyVersion is ClientHello.legacy_version (0x0303 for TLS 1.2+).
	LegacyVersion uint16
	// SupportedVersions lists the supported_versions extension without
	// GREASE values; nil when the extension is absent (TLS <= 1.2 client).
	SupportedVersions []uint16
	// ECH reports an encrypted_client_hello (0xfe0d) extension: Name is
	// then the outer, public name and the real one is encrypted.
	ECH bool

	// HTTPMethod is the request method, e.g. "GET" ("PRI" for the preface).
	HTTPMethod string
	// HTTPVersion is "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0" (preface only).
	HTTPVersion string
	// CONNECT reports a CONNECT request; Name/Addr/Port are its target.
	CONNECT bool
	// H2Preface reports the HTTP/2 prior-knowledge preface, which names no
	// host in plain text: Name and Addr are empty.
	H2Preface bool
}

// Host returns Name or, for an IP literal, the address in text form.
func (r *Result) Host() string {
	if r.Addr.IsValid() {
		return r.Addr.String()
	}
	return r.Name
}

package httphead

import "bytes"

// BodyKind says how a message's body is delimited (RFC 9112 6.3).
type BodyKind uint8

// Body kinds of a Framing.
const (
	BodyNone       BodyKind = iota // no body: the message ends with its head
	BodyLength                     // Framing.Length bytes (Content-Length)
	BodyChunked                    // the chunked transfer coding
	BodyUntilClose                 // the rest of the connection (responses only)
)

// Upgrade is the protocol an Upgrade header field asks for.
type Upgrade uint8

// Upgrades of a Framing.
const (
	UpgradeNone      Upgrade = iota // no Upgrade header
	UpgradeWebSocket                // websocket (and no h2c)
	UpgradeH2C                      // h2c, HTTP/2 in the clear, among the protocols offered
	UpgradeOther                    // any other protocol
)

// Framing is what a head's fields say about where its message ends and
// what follows it on the connection.
type Framing struct {
	Body   BodyKind
	Length int64 // of a BodyLength body
	// Close: the connection ends after this message ("Connection: close",
	// or HTTP/1.0 without "Connection: keep-alive").
	Close bool
	// Upgrade is what an Upgrade header asks for (requests).
	Upgrade Upgrade
}

// maxContentLengthDigits bounds a Content-Length: 18 decimal digits are
// below 2^63.
const maxContentLengthDigits = 18

// framingFields is what the fields of one head say, before the rules of
// the message kind apply.
type framingFields struct {
	length    int64
	hasLength bool
	chunked   bool // Transfer-Encoding: chunked
	hasTE     bool
	close     bool
	keepAlive bool
	upgrade   Upgrade
}

// scanFraming reads the framing fields of a complete head (the start line
// and its fields through the empty line). Anything two parsers could read
// differently is an error: Content-Length that is not one decimal number,
// several that differ, a Transfer-Encoding other than exactly "chunked"
// (once), or both Content-Length and Transfer-Encoding.
func scanFraming(head []byte) (framingFields, error) {
	var f framingFields
	i := bytes.Index(head, crlf)
	if i < 0 {
		return f, malformed("head without a line end")
	}
	for pos := i + 2; pos < len(head); {
		j := bytes.Index(head[pos:], crlf)
		if j <= 0 { // the empty line, or no line end
			break
		}
		line := head[pos : pos+j]
		pos += j + 2
		name, value, err := headerField(line)
		if err != nil {
			return f, err
		}
		if err := f.field(name, value); err != nil {
			return f, err
		}
	}
	if f.hasTE && f.hasLength {
		return f, malformed("both Transfer-Encoding and Content-Length")
	}
	return f, nil
}

var crlf = []byte("\r\n")

// field takes one header field into f.
func (f *framingFields) field(name, value []byte) error {
	switch len(name) {
	case len("content-length"):
		if asciiEqualFold(name, "content-length") {
			return f.contentLength(value)
		}
	case len("transfer-encoding"):
		if asciiEqualFold(name, "transfer-encoding") {
			if f.hasTE {
				return malformed("several Transfer-Encoding headers")
			}
			if !asciiEqualFold(value, "chunked") {
				return malformed("Transfer-Encoding %q is not exactly chunked", truncate(value))
			}
			f.hasTE, f.chunked = true, true
		}
	case len("connection"):
		if asciiEqualFold(name, "connection") {
			return eachToken(value, f.connectionOption)
		}
	case len("upgrade"):
		if asciiEqualFold(name, "upgrade") {
			return eachToken(value, f.upgradeProtocol)
		}
	}
	return nil
}

// contentLength takes a Content-Length value: 1*DIGIT, equal to any
// earlier one.
func (f *framingFields) contentLength(v []byte) error {
	if len(v) == 0 || len(v) > maxContentLengthDigits {
		return malformed("Content-Length %q is not 1-%d digits", truncate(v), maxContentLengthDigits)
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return malformed("Content-Length %q is not a decimal number", truncate(v))
		}
		n = n*10 + int64(c-'0')
	}
	if f.hasLength && n != f.length {
		return malformed("Content-Length %d and %d differ", f.length, n)
	}
	f.length, f.hasLength = n, true
	return nil
}

func (f *framingFields) connectionOption(tok []byte) error {
	switch {
	case asciiEqualFold(tok, "close"):
		f.close = true
	case asciiEqualFold(tok, "keep-alive"):
		f.keepAlive = true
	}
	return nil
}

func (f *framingFields) upgradeProtocol(tok []byte) error {
	name, _, _ := bytes.Cut(tok, []byte{'/'})
	switch {
	case asciiEqualFold(name, "h2c"):
		f.upgrade = UpgradeH2C
	case f.upgrade == UpgradeH2C:
	case asciiEqualFold(name, "websocket"):
		f.upgrade = UpgradeWebSocket
	case f.upgrade == UpgradeNone:
		f.upgrade = UpgradeOther
	}
	return nil
}

// eachToken calls fn with each non-empty element of a comma-separated
// list, without surrounding whitespace.
func eachToken(v []byte, fn func([]byte) error) error {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		if tok = trimOWS(tok); len(tok) > 0 {
			if err := fn(tok); err != nil {
				return err
			}
		}
	}
	return nil
}

// requestFraming is the framing of a request head (RFC 9112 6.3: a request
// without Content-Length or Transfer-Encoding has no body). An HTTP/1.0
// request with Transfer-Encoding is refused (RFC 9112 6.1: its framing is
// faulty).
func requestFraming(head []byte, version string) (Framing, error) {
	f, err := scanFraming(head)
	if err != nil {
		return Framing{}, err
	}
	fr := Framing{Upgrade: f.upgrade}
	switch {
	case f.chunked && version != "HTTP/1.1":
		return Framing{}, malformed("Transfer-Encoding in an %s request", version)
	case f.chunked:
		fr.Body = BodyChunked
	case f.hasLength && f.length > 0:
		fr.Body, fr.Length = BodyLength, f.length
	}
	fr.Close = f.close || version == "HTTP/1.0" && !f.keepAlive
	return fr, nil
}

// responseFraming is the framing of a response head with status to a
// request whose method was HEAD (toHEAD) or not (RFC 9112 6.3): no body
// after HEAD, 1xx, 204 and 304; else chunked, Content-Length, or the rest
// of the connection.
func responseFraming(head []byte, version string, status int, toHEAD bool) (Framing, error) {
	f, err := scanFraming(head)
	if err != nil {
		return Framing{}, err
	}
	if f.chunked && version != "HTTP/1.1" {
		return Framing{}, malformed("Transfer-Encoding in an %s response", version)
	}
	fr := Framing{Close: f.close || version == "HTTP/1.0" && !f.keepAlive}
	switch {
	case toHEAD || status/100 == 1 || status == 204 || status == 304:
	case f.chunked:
		fr.Body = BodyChunked
	case f.hasLength:
		if f.length > 0 {
			fr.Body, fr.Length = BodyLength, f.length
		}
	default:
		fr.Body, fr.Close = BodyUntilClose, true
	}
	return fr, nil
}

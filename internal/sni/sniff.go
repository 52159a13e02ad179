package sni

import "fmt"

// maxMethodLen bounds how far Sniff looks for the space after a method.
const maxMethodLen = 32

// Sniff decides from the first bytes of a connection whether it is TLS (a
// handshake record), HTTP/1.x (a method token followed by a space, which
// includes the HTTP/2 preface) or neither. Status is NeedMore while b is
// too short to tell, and Done once the Kind is decided.
func Sniff(b []byte) (Kind, Status) {
	if len(b) == 0 {
		return KindUnknown, NeedMore
	}
	if b[0] == recordTypeHandshake {
		if len(b) < 2 {
			return KindTLS, NeedMore
		}
		if b[1] == 3 {
			return KindTLS, Done
		}
		return KindUnknown, Done
	}
	for i, c := range b {
		switch {
		case i >= maxMethodLen:
			return KindUnknown, Done
		case c == ' ' && i > 0:
			return KindHTTP, Done
		case !tcharTable[c]:
			return KindUnknown, Done
		}
	}
	if len(b) >= maxMethodLen {
		return KindUnknown, Done
	}
	return KindUnknown, NeedMore
}

// Parse sniffs b and runs the matching parser: ParseClientHello with
// maxHandshake or ParseHTTP with maxHTTPHead (defaults when <= 0). Bytes of
// neither protocol are Malformed with ErrUnknownProtocol.
func Parse(b []byte, maxHandshake, maxHTTPHead int) (Result, Status, error) {
	kind, st := Sniff(b)
	if st == NeedMore {
		return Result{Kind: kind}, NeedMore, nil
	}
	switch kind {
	case KindTLS:
		return ParseClientHello(b, maxHandshake)
	case KindHTTP:
		return ParseHTTP(b, maxHTTPHead)
	}
	return Result{}, Malformed, fmt.Errorf("%w: first bytes %q are neither a TLS handshake nor an HTTP/1.x request",
		ErrUnknownProtocol, b[:min(len(b), 8)])
}

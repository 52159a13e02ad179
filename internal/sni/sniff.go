package sni

import (
	"errors"
	"fmt"

	"github.com/egressfw/egressfw/internal/httphead"
)

// maxMethodLen bounds how far Sniff looks for the space after a method.
const maxMethodLen = 32

// Sniff decides from the first bytes of a connection whether it is TLS (a
// handshake record), HTTP/1.x (a method token followed by a space, which
// includes the HTTP/2 preface) or neither. Status is NeedMore while b is
// too short to tell, and Done once the Kind is decided.
func Sniff(b []byte) (Kind, Status) {
	k, st, _ := sniffFrom(b, 0)
	return k, st
}

// sniffFrom is Sniff for a b whose first i bytes decided nothing (b[0]
// aside, which it looks at again); it also returns how far it looked.
func sniffFrom(b []byte, i int) (Kind, Status, int) {
	if len(b) == 0 {
		return KindUnknown, NeedMore, 0
	}
	if b[0] == recordTypeHandshake {
		if len(b) < 2 {
			return KindTLS, NeedMore, 1
		}
		if b[1] == 3 {
			return KindTLS, Done, 2
		}
		return KindUnknown, Done, 2
	}
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case i >= maxMethodLen:
			return KindUnknown, Done, i
		case c == ' ' && i > 0:
			return KindHTTP, Done, i + 1
		case !httphead.TokenChar(c):
			return KindUnknown, Done, i + 1
		}
	}
	if len(b) >= maxMethodLen {
		return KindUnknown, Done, i
	}
	return KindUnknown, NeedMore, i
}

// Parse sniffs b and runs the matching parser: ParseClientHello with
// maxHandshake or httphead.Parse with maxHTTPHead (defaults when <= 0).
// Bytes of neither protocol are Malformed with ErrUnknownProtocol.
func Parse(b []byte, maxHandshake, maxHTTPHead int) (Result, Status, error) {
	opts := PeekOptions{MaxHandshake: maxHandshake, MaxHTTPHead: maxHTTPHead}.withDefaults()
	return newParser(opts).parse(b)
}

// parser is Parse for a connection whose bytes arrive in pieces: fed the
// growing buffer of everything read so far, it continues where it
// stopped, so the work of a whole peek is linear in the bytes read.
type parser struct {
	opts    PeekOptions
	sniffed int // bytes Sniff looked at without deciding
	tls     *helloParser
	http    *httphead.Parser
	work    int // bytes examined by the sniffing
}

func newParser(opts PeekOptions) *parser { return &parser{opts: opts} }

// parse continues with b, which extends every buffer passed before.
func (p *parser) parse(b []byte) (Result, Status, error) {
	if p.tls == nil && p.http == nil {
		kind, st, n := sniffFrom(b, p.sniffed)
		if len(b) > 0 {
			p.work += 1 + n - p.sniffed // b[0], and the bytes after those sniffed before
		}
		p.sniffed = n
		if st == NeedMore {
			return Result{Kind: kind}, NeedMore, nil
		}
		switch kind {
		case KindTLS:
			p.tls = newHelloParser(p.opts.MaxHandshake, p.opts.MaxHelloRecords)
		case KindHTTP:
			p.http = httphead.NewParser(p.opts.MaxHTTPHead)
		default:
			return Result{}, Malformed, fmt.Errorf("%w: first bytes %q are neither a TLS handshake nor an HTTP/1.x request",
				ErrUnknownProtocol, b[:min(n, 8)])
		}
	}
	if p.tls != nil {
		return p.tls.parse(b)
	}
	return httpResult(p.http.Parse(b))
}

// httpResult is a request head's parse as a Result (the HTTP fields are
// the head's): with NeedMore only the Kind, as for TLS.
func httpResult(h httphead.Head, st httphead.Status, err error) (Result, Status, error) {
	if st == httphead.NeedMore {
		return Result{Kind: KindHTTP}, NeedMore, nil
	}
	r := Result{Kind: KindHTTP, Name: h.Name, Addr: h.Addr, Port: h.Port,
		HTTPMethod: h.Method, HTTPVersion: h.Version, CONNECT: h.CONNECT, H2Preface: h.H2Preface}
	if st == httphead.Done {
		return r, Done, nil
	}
	as := ErrMalformed
	if errors.Is(err, httphead.ErrTooLarge) {
		as = ErrTooLarge
	}
	return r, Malformed, headError{err, as}
}

// headError is an httphead error as this package reports it: it reads the
// same and also matches this package's ErrMalformed or ErrTooLarge.
type headError struct {
	err error // from httphead
	as  error // ErrMalformed or ErrTooLarge
}

func (e headError) Error() string   { return e.err.Error() }
func (e headError) Unwrap() []error { return []error{e.err, e.as} }

// wants is how many more bytes must arrive before the parse can decide:
// the rest of a TLS record's payload once the handshake header is known,
// else 1.
func (p *parser) wants() int {
	if p.tls != nil {
		return p.tls.wants()
	}
	return 1
}

// examined is how many bytes the parse so far looked at, counting a byte
// once each time it was looked at.
func (p *parser) examined() int {
	n := p.work
	if p.tls != nil {
		n += p.tls.work
	}
	if p.http != nil {
		n += p.http.Examined()
	}
	return n
}

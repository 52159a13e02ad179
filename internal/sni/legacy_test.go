package sni

import (
	"fmt"

	"github.com/egressfw/egressfw/internal/httphead"
)

// This file keeps the ClientHello parser as it was before it became
// incremental: each call walks its input from the first byte. It is the
// oracle the fuzz targets compare the incremental parser with, and the
// "old" side of BenchmarkPeekDripped. legacyWork counts the bytes it
// examines, the way the incremental parsers count theirs. A request head
// is re-parsed the same way, by a fresh httphead.Parser each call
// (httphead keeps the old head parser as its own oracle).

var legacyWork int

// legacyParse is Parse re-run on the whole buffer after every read, as the
// peek loop did. maxRecords does not exist there.
func legacyParse(b []byte, maxHandshake, maxHTTPHead int) (Result, Status, error) {
	kind, st := Sniff(b)
	legacyWork += min(len(b), maxMethodLen)
	if st == NeedMore {
		return Result{Kind: kind}, NeedMore, nil
	}
	switch kind {
	case KindTLS:
		return legacyParseClientHello(b, maxHandshake)
	case KindHTTP:
		p := httphead.NewParser(maxHTTPHead)
		defer func() { legacyWork += p.Examined() }()
		return httpResult(p.Parse(b))
	}
	return Result{}, Malformed, fmt.Errorf("%w: first bytes %q are neither a TLS handshake nor an HTTP/1.x request",
		ErrUnknownProtocol, b[:min(len(b), 8)])
}

func legacyParseClientHello(b []byte, maxHandshake int) (Result, Status, error) {
	if maxHandshake <= 0 {
		maxHandshake = DefaultMaxHandshake
	}
	msg, st, err := legacyHandshakeMessage(b, maxHandshake)
	if st != Done {
		return Result{Kind: KindTLS}, st, err
	}
	legacyWork += len(msg)
	return parseClientHello(msg)
}

// legacyHandshakeMessage walks the handshake records in b and returns the
// first handshake message (header included) once every byte of it is
// present.
func legacyHandshakeMessage(b []byte, max int) ([]byte, Status, error) {
	var hdr [handshakeHeaderLen]byte
	nhdr := 0
	need := -1 // length of the whole message once its header is known
	total := 0 // declared payload bytes of the records walked so far
	records := 0
	for off := 0; ; {
		rest := b[off:]
		legacyWork += min(len(rest), recordHeaderLen)
		if err := legacyCheckRecordHeader(rest); err != nil {
			return nil, Malformed, err
		}
		if len(rest) < recordHeaderLen {
			return nil, NeedMore, nil
		}
		n := int(rest[3])<<8 | int(rest[4])
		records++
		total += n
		payload := rest[recordHeaderLen:min(len(rest), recordHeaderLen+n)]
		for i := 0; nhdr < handshakeHeaderLen && i < len(payload); i++ {
			hdr[nhdr] = payload[i]
			nhdr++
		}
		if need < 0 {
			var err error
			if need, err = messageLength(hdr[:nhdr], max); err != nil {
				return nil, Malformed, err
			}
		}
		if need >= 0 && total > need {
			return nil, Malformed, malformedTLS("%d bytes follow the ClientHello in its last record", total-need)
		}
		if len(payload) < n {
			return nil, NeedMore, nil
		}
		off += recordHeaderLen + n
		if need >= 0 && total == need {
			if records == 1 {
				return b[recordHeaderLen : recordHeaderLen+need], Done, nil
			}
			return legacyReassemble(b[:off], need), Done, nil
		}
	}
}

func legacyCheckRecordHeader(b []byte) error {
	if len(b) >= 1 && b[0] != recordTypeHandshake {
		return malformedTLS("record type %d where a handshake record was expected", b[0])
	}
	if len(b) >= 2 && b[1] != 3 {
		return malformedTLS("record major version %d is not 3", b[1])
	}
	if len(b) >= recordHeaderLen {
		n := int(b[3])<<8 | int(b[4])
		if n == 0 {
			return malformedTLS("empty handshake record")
		}
		if n > maxRecordPayload {
			return malformedTLS("record of %d bytes exceeds 2^14", n)
		}
	}
	return nil
}

func legacyReassemble(b []byte, need int) []byte {
	msg := make([]byte, 0, need)
	for len(b) >= recordHeaderLen {
		n := int(b[3])<<8 | int(b[4])
		msg = append(msg, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
	}
	legacyWork += need
	return msg
}

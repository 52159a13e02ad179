package sni

import (
	"bytes"
	"fmt"
)

// This file keeps the parsers as they were before they became incremental:
// each call walks its input from the first byte. They are the oracle the
// fuzz targets compare the incremental parsers with, and the "old" side of
// BenchmarkPeekDripped. legacyWork counts the bytes they examine, the way
// the incremental parsers count theirs.

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
		return legacyParseHTTP(b, maxHTTPHead)
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

func legacyParseHTTP(b []byte, limit int) (Result, Status, error) {
	if limit <= 0 {
		limit = DefaultMaxHTTPHead
	}
	r := Result{Kind: KindHTTP}
	head := b[:min(len(b), limit)]
	if n := min(len(head), len(h2Preface)); string(head[:n]) == h2Preface[:n] {
		legacyWork += n
		if n < len(h2Preface) {
			return tooLargeOr(r, NeedMore, nil, len(b), limit)
		}
		r.HTTPMethod, r.HTTPVersion, r.H2Preface = "PRI", "HTTP/2.0", true
		return r, Done, nil
	}
	line, rest, st, err := legacyNextLine(head)
	if st != Done {
		return tooLargeOr(r, st, err, len(b), limit)
	}
	target, err := parseRequestLine(&r, line)
	if err != nil {
		return r, Malformed, err
	}
	host, hasHost, st, err := legacyScanHeaders(rest)
	if st != Done {
		return tooLargeOr(r, st, err, len(b), limit)
	}
	if err := resolveTarget(&r, target, host, hasHost); err != nil {
		return r, Malformed, err
	}
	return r, Done, nil
}

func legacyNextLine(b []byte) (line, rest []byte, st Status, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		legacyWork += 2 * len(b)
		if j := bytes.IndexByte(b, '\r'); j >= 0 && j < len(b)-1 {
			return nil, nil, Malformed, malformedHTTP("bare CR in request head")
		}
		return nil, nil, NeedMore, nil
	}
	legacyWork += 3 * (i + 1)
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, Malformed, malformedHTTP("bare LF in request head")
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, Malformed, malformedHTTP("bare CR in request head")
	}
	return line, b[i+1:], Done, nil
}

func legacyScanHeaders(b []byte) (host []byte, hasHost bool, st Status, err error) {
	for {
		var line []byte
		line, b, st, err = legacyNextLine(b)
		if st != Done {
			return nil, false, st, err
		}
		if len(line) == 0 {
			return host, hasHost, Done, nil
		}
		name, value, err := headerField(line)
		if err != nil {
			return nil, false, Malformed, err
		}
		if asciiEqualFold(name, "host") {
			if hasHost {
				return nil, false, Malformed, malformedHTTP("duplicate Host header")
			}
			host, hasHost = value, true
		}
	}
}

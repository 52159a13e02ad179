package sni

import (
	"fmt"
)

// TLS wire constants (RFC 8446 sections 4 and 5).
const (
	recordHeaderLen          = 5
	maxRecordPayload         = 1 << 14 // plaintext records are at most 2^14 bytes
	recordTypeHandshake      = 0x16
	handshakeHeaderLen       = 4
	handshakeTypeClientHello = 1
)

// ParseClientHello parses the TLS records at the start of b up to the end of
// the first handshake message, which must be a ClientHello, and reports its
// server_name, ALPN, versions and ECH presence. The ClientHello may be split
// across any number of handshake records (record-layer fragmentation); b may
// end anywhere, in which case the status is NeedMore. A handshake message
// longer than maxHandshake bytes (DefaultMaxHandshake when <= 0) is
// Malformed with ErrTooLarge. Bytes after the last record of the ClientHello
// are not examined.
//
// A server_name that is an IP literal (forbidden by RFC 6066) is reported
// as Malformed with ErrIPLiteralSNI, and Result.Addr holds the address.
// A ClientHello without server_name is Done with an empty Name and Addr.
func ParseClientHello(b []byte, maxHandshake int) (Result, Status, error) {
	if maxHandshake <= 0 {
		maxHandshake = DefaultMaxHandshake
	}
	msg, st, err := handshakeMessage(b, maxHandshake)
	if st != Done {
		return Result{Kind: KindTLS}, st, err
	}
	return parseClientHello(msg)
}

// malformedTLS builds a specific reason wrapping ErrMalformed.
func malformedTLS(format string, args ...any) error {
	return fmt.Errorf("%w: tls: "+format, append([]any{ErrMalformed}, args...)...)
}

// handshakeMessage walks the handshake records in b and returns the first
// handshake message (header included) once every byte of it is present. It
// copies only when the message spans several records; a NeedMore answer
// never allocates, so callers may re-parse a growing buffer cheaply.
func handshakeMessage(b []byte, max int) ([]byte, Status, error) {
	var hdr [handshakeHeaderLen]byte
	nhdr := 0
	need := -1 // length of the whole message once its header is known
	total := 0 // declared payload bytes of the records walked so far
	records := 0
	for off := 0; ; {
		rest := b[off:]
		if err := checkRecordHeader(rest); err != nil {
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
			return reassemble(b[:off], need), Done, nil
		}
	}
}

// checkRecordHeader validates as much of a record header as b holds, so
// that garbage is rejected from its first byte.
func checkRecordHeader(b []byte) error {
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

// messageLength returns the total length of the handshake message whose
// header bytes are h, or -1 if h is not complete yet. It rejects anything
// that is not a ClientHello of at most max bytes as soon as it can tell.
func messageLength(h []byte, max int) (int, error) {
	if len(h) >= 1 && h[0] != handshakeTypeClientHello {
		return -1, malformedTLS("handshake message type %d is not ClientHello", h[0])
	}
	if len(h) < handshakeHeaderLen {
		return -1, nil
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if n > max {
		return -1, fmt.Errorf("%w: tls: ClientHello of %d bytes exceeds the %d-byte limit", ErrTooLarge, n, max)
	}
	return handshakeHeaderLen + n, nil
}

// reassemble concatenates the payloads of the complete handshake records in
// b, which together hold exactly need bytes.
func reassemble(b []byte, need int) []byte {
	msg := make([]byte, 0, need)
	for len(b) >= recordHeaderLen {
		n := int(b[3])<<8 | int(b[4])
		msg = append(msg, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
	}
	return msg
}

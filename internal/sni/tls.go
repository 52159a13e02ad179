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
// across up to DefaultMaxHelloRecords handshake records (record-layer
// fragmentation); b may end anywhere, in which case the status is NeedMore.
// A handshake message longer than maxHandshake bytes (DefaultMaxHandshake
// when <= 0) is Malformed with ErrTooLarge, one spread over more records
// Malformed with ErrTooManyRecords. Bytes after the last record of the
// ClientHello are not examined.
//
// A server_name that is an IP literal (forbidden by RFC 6066) is reported
// as Malformed with ErrIPLiteralSNI, and Result.Addr holds the address.
// A ClientHello without server_name is Done with an empty Name and Addr.
func ParseClientHello(b []byte, maxHandshake int) (Result, Status, error) {
	if maxHandshake <= 0 {
		maxHandshake = DefaultMaxHandshake
	}
	return newHelloParser(maxHandshake, DefaultMaxHelloRecords).parse(b)
}

// malformedTLS builds a specific reason wrapping ErrMalformed.
func malformedTLS(format string, args ...any) error {
	return fmt.Errorf("%w: tls: "+format, append([]any{ErrMalformed}, args...)...)
}

// helloParser reassembles a ClientHello from handshake records as they
// arrive. It is fed the growing buffer of the bytes read so far and keeps
// its place in it, so each byte is examined a bounded number of times
// however the bytes are split into reads and records; the message is
// parsed once, when its last byte is in.
type helloParser struct {
	maxMsg, maxRecords int

	off      int                      // next wire byte to examine
	rec      [recordHeaderLen]byte    // the record header being read
	nrec     int                      // bytes of it read
	left     int                      // payload bytes of the current record still to come
	first    int                      // payload length of the first record
	records  int                      // record headers read
	declared int                      // payload bytes the record headers announce
	hs       [handshakeHeaderLen]byte // the handshake header
	nhs      int                      // bytes of it read
	need     int                      // handshake message length once its header is in, else -1
	msg      []byte                   // the message, copied once it spans a second record
	work     int                      // bytes examined, for the linear-work tests
}

func newHelloParser(maxMsg, maxRecords int) *helloParser {
	return &helloParser{maxMsg: maxMsg, maxRecords: maxRecords, need: -1}
}

// parse continues with b, which extends every buffer passed before.
func (h *helloParser) parse(b []byte) (Result, Status, error) {
	for h.off < len(b) {
		if h.left == 0 {
			if err := h.recordHeader(b); err != nil {
				return Result{Kind: KindTLS}, Malformed, err
			}
			continue
		}
		if err := h.payload(b); err != nil {
			return Result{Kind: KindTLS}, Malformed, err
		}
		if h.left == 0 && h.need >= 0 && h.declared == h.need {
			return h.done(b)
		}
	}
	return Result{Kind: KindTLS}, NeedMore, nil
}

// recordHeader reads the next record header byte by byte, rejecting garbage
// from its first byte, and opens the record once the header is complete.
func (h *helloParser) recordHeader(b []byte) error {
	for h.nrec < recordHeaderLen && h.off < len(b) {
		c := b[h.off]
		h.work++
		switch {
		case h.nrec == 0 && c != recordTypeHandshake:
			return malformedTLS("record type %d where a handshake record was expected", c)
		case h.nrec == 1 && c != 3:
			return malformedTLS("record major version %d is not 3", c)
		}
		h.rec[h.nrec] = c
		h.nrec++
		h.off++
	}
	if h.nrec < recordHeaderLen {
		return nil
	}
	n := int(h.rec[3])<<8 | int(h.rec[4])
	switch {
	case n == 0:
		return malformedTLS("empty handshake record")
	case n > maxRecordPayload:
		return malformedTLS("record of %d bytes exceeds 2^14", n)
	case h.records == h.maxRecords:
		return fmt.Errorf("%w: tls: ClientHello spans more than %d records", ErrTooManyRecords, h.maxRecords)
	}
	h.records++
	h.nrec, h.left = 0, n
	h.declared += n
	switch h.records {
	case 1:
		h.first = n
	case 2:
		// A second record: from now on the message is reassembled. The
		// first record's payload is all in (its header lies before).
		start := recordHeaderLen
		h.msg = append(h.msg, b[start:start+h.first]...)
		h.work += h.first
	}
	return h.checkLength()
}

// payload takes the current record's payload bytes that b holds.
func (h *helloParser) payload(b []byte) error {
	k := min(h.left, len(b)-h.off)
	p := b[h.off : h.off+k]
	h.off += k
	h.left -= k
	for i := 0; h.nhs < handshakeHeaderLen && i < len(p); i++ {
		h.hs[h.nhs] = p[i]
		h.nhs++
		if err := h.checkHeader(); err != nil {
			return err
		}
	}
	if h.records > 1 {
		h.msg = append(h.msg, p...)
	}
	h.work += k
	return nil
}

// wants is how many more bytes must arrive before the parse can decide:
// within a record's payload, after the handshake header, nothing is
// judged until the record is complete.
func (h *helloParser) wants() int {
	if h.left > 0 && h.nhs == handshakeHeaderLen {
		return h.left
	}
	return 1
}

// checkHeader rejects what the handshake header bytes read so far prove is
// not an acceptable ClientHello, and learns the message length.
func (h *helloParser) checkHeader() error {
	need, err := messageLength(h.hs[:h.nhs], h.maxMsg)
	if err != nil || need < 0 {
		return err
	}
	h.need = need
	return h.checkLength()
}

// checkLength rejects records that announce more bytes than the message.
func (h *helloParser) checkLength() error {
	if h.need >= 0 && h.declared > h.need {
		return malformedTLS("%d bytes follow the ClientHello in its last record", h.declared-h.need)
	}
	return nil
}

// done parses the complete message.
func (h *helloParser) done(b []byte) (Result, Status, error) {
	msg := h.msg
	if h.records == 1 {
		msg = b[recordHeaderLen : recordHeaderLen+h.need]
	}
	h.work += len(msg)
	return parseClientHello(msg)
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

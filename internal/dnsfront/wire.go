package dnsfront

import "encoding/binary"

// Query parsing. A tenant's message is read like crypto/tls reads a
// handshake: bounds-checked reads that fail with ok=false, no allocation,
// and nothing but what a stub resolver sends is accepted: one question,
// class and type in it, and at most one additional record, an OPT. The
// question section is kept as the tenant sent it (names in their case,
// which DNS 0x20 clients check) and echoed in the reply.

// Limits on what a tenant may send.
const (
	// MaxQuerySize bounds a query over UDP and TCP. Queries are a header,
	// one name and an OPT record: a few hundred bytes even when padded.
	MaxQuerySize = 4096
	headerLen    = 12
	maxNameLen   = 255 // wire form, RFC 1035 3.1
)

// Header flag bits (RFC 1035 4.1.1, RFC 4035 for CD).
const (
	flagQR     = 1 << 15
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	flagRA     = 1 << 7
	flagCD     = 1 << 4
	opcodeMask = 0xf << 11
)

// Response codes dnsfront sends (RFC 1035, RFC 6891 for BADVERS, whose
// upper bits travel in the OPT record).
const (
	rcodeSuccess  = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeNotImp   = 4
	rcodeRefused  = 5
	rcodeBadVers  = 16
)

const (
	typeOPT = 41
	classIN = 1
)

// query is a parsed tenant message. Slices point into the message.
type query struct {
	id       uint16
	flags    uint16 // the query's header flags
	question []byte // the question section as sent: name, type, class
	name     []byte // the question's name in wire form (labels)
	qtype    uint16
	qclass   uint16
	edns     bool   // an OPT record was sent
	udpSize  uint16 // its payload size (0 without EDNS)
	version  uint8  // its EDNS version
	rcode    int    // set when the message is answered with an error only
}

// parseQuery reads a tenant's message. ok=false means it is not worth a
// reply (shorter than a header, or a response: answering responses could
// loop). Otherwise q.rcode, when not success, is the error to answer with;
// q.question is then set only if the question itself was well formed.
func parseQuery(msg []byte) (q query, ok bool) {
	if len(msg) < headerLen {
		return q, false
	}
	q.id = binary.BigEndian.Uint16(msg)
	q.flags = binary.BigEndian.Uint16(msg[2:])
	if q.flags&flagQR != 0 {
		return q, false
	}
	if q.flags&opcodeMask != 0 {
		q.rcode = rcodeNotImp
		return q, true
	}
	qd, an, ns, ar := be16(msg[4:]), be16(msg[6:]), be16(msg[8:]), be16(msg[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		q.rcode = rcodeFormErr
		return q, true
	}
	rest := msg[headerLen:]
	name, rest, ok := readName(rest)
	if !ok || len(rest) < 4 {
		q.rcode = rcodeFormErr
		return q, true
	}
	q.name = name
	q.qtype, q.qclass = be16(rest), be16(rest[2:])
	q.question = msg[headerLen : headerLen+len(name)+4]
	rest = rest[4:]
	if ar == 1 {
		if rest, ok = q.readOPT(rest); !ok {
			q.rcode = rcodeFormErr
			return q, true
		}
	}
	if len(rest) != 0 {
		q.rcode = rcodeFormErr
		return q, true
	}
	if q.edns && q.version != 0 {
		q.rcode = rcodeBadVers
	}
	return q, true
}

// readName reads an uncompressed name: stub resolvers never compress the
// only name of a query, so a pointer is refused rather than followed.
func readName(b []byte) (name, rest []byte, ok bool) {
	i := 0
	for {
		if i >= len(b) {
			return nil, nil, false
		}
		l := int(b[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 { // a pointer (0xc0) or a reserved label type
			return nil, nil, false
		}
		i += 1 + l
		if i >= maxNameLen {
			return nil, nil, false
		}
	}
	return b[:i], b[i:], true
}

// readOPT reads the additional record, which must be an OPT (RFC 6891
// 6.1): root owner, type 41, the payload size as its class, extended
// rcode, version and flags as its TTL, and options as its data.
func (q *query) readOPT(b []byte) (rest []byte, ok bool) {
	if len(b) < 11 || b[0] != 0 || be16(b[1:]) != typeOPT {
		return nil, false
	}
	q.edns, q.udpSize, q.version = true, be16(b[3:]), b[6]
	rdlen := int(be16(b[9:]))
	b = b[11:]
	if len(b) < rdlen {
		return nil, false
	}
	for opts := b[:rdlen]; len(opts) > 0; { // options: code, length, data
		if len(opts) < 4 || len(opts)-4 < int(be16(opts[2:])) {
			return nil, false
		}
		opts = opts[4+int(be16(opts[2:])):]
	}
	return b[rdlen:], true
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// presentation returns the name in presentation form without the trailing
// dot, or ok=false if a label holds a byte no host name has (only ASCII
// letters, digits, '-' and '_' pass: a '.' or a space inside a label, or
// raw UTF-8, is not a name egressfw resolves). Letters keep their case.
func presentation(wire []byte) (string, bool) {
	if len(wire) <= 1 {
		return "", false // the root
	}
	buf := make([]byte, 0, len(wire))
	for i := 0; wire[i] != 0; {
		l := int(wire[i])
		for _, c := range wire[i+1 : i+1+l] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
		if i > 0 {
			buf = append(buf, '.')
		}
		buf = append(buf, wire[i+1:i+1+l]...)
		i += 1 + l
	}
	return string(buf), true
}

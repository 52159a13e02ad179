package dnsfront

import (
	"encoding/binary"
	"strings"

	"github.com/miekg/dns"
)

// Replies. A reply without answers (an error, a refusal, a truncated
// answer) is written by hand: the query's header fields, its question as
// sent, and an OPT record if the query had one. A reply with answers is
// packed by miekg/dns from the decision's records, with the question's
// name as the tenant spelled it.

// Sizes of replies (RFC 6891, DNS flag day 2020).
const (
	// ednsSize is the payload size egressfw advertises and the most it
	// sends over UDP: no reply is fragmented.
	ednsSize = 1232
	// plainUDPSize is the UDP limit for a query without EDNS.
	plainUDPSize = 512
	// maxTCPReply is what a TCP length prefix can carry.
	maxTCPReply = 65535
)

// EDE info codes (RFC 8914) a refusal may carry.
const (
	edeOther   = 0
	edeBlocked = 15
	optionEDE  = 15
)

// replyLimit is the largest reply the query may receive.
func replyLimit(q *query, tcp bool) int {
	switch {
	case tcp:
		return maxTCPReply
	case !q.edns || q.udpSize <= plainUDPSize:
		return plainUDPSize
	}
	return min(int(q.udpSize), ednsSize)
}

// replyFlags are the header flags of the reply to q: QR, the query's
// opcode, RD and CD, RA (egressfw recurses), TC and the low rcode bits.
func replyFlags(q *query, rcode int, tc bool) uint16 {
	f := uint16(flagQR|flagRA) | q.flags&(opcodeMask|flagRD|flagCD) | uint16(rcode&0xf)
	if tc {
		f |= flagTC
	}
	return f
}

// rawReply appends a reply without answers to out: rcode, the question if
// it was well formed, an OPT if the query had one (carrying an Extended DNS
// Error with tell as its text when tell is not empty).
func rawReply(out []byte, q *query, rcode int, tc bool, tell string, ede uint16) []byte {
	var h [headerLen]byte
	binary.BigEndian.PutUint16(h[0:], q.id)
	binary.BigEndian.PutUint16(h[2:], replyFlags(q, rcode, tc))
	if q.question != nil {
		h[5] = 1
	}
	if q.edns {
		h[11] = 1
	}
	out = append(out, h[:]...)
	out = append(out, q.question...)
	if q.edns {
		out = appendOPT(out, rcode, tell, ede)
	}
	return out
}

// appendOPT appends egressfw's OPT record: its payload size, the upper
// bits of rcode, version 0, no flags, and an EDE option if tell is set.
func appendOPT(out []byte, rcode int, tell string, ede uint16) []byte {
	tell = tell[:min(len(tell), 200)]
	rdlen := 0
	if tell != "" {
		rdlen = 4 + 2 + len(tell)
	}
	out = append(out, 0, 0, typeOPT, byte(ednsSize>>8), byte(ednsSize&0xff), byte(rcode>>4), 0, 0, 0, byte(rdlen>>8), byte(rdlen))
	if tell != "" {
		out = binary.BigEndian.AppendUint16(out, optionEDE)
		out = binary.BigEndian.AppendUint16(out, uint16(2+len(tell)))
		out = binary.BigEndian.AppendUint16(out, ede)
		out = append(out, tell...)
	}
	return out
}

// answerReply appends a NOERROR reply carrying rrs to out, or, if it
// would exceed limit, a truncated reply without answers (TC set: the
// client asks again over TCP). asked is the question's name as the tenant
// wrote it; records owned by that name are given its spelling.
func answerReply(out []byte, q *query, asked string, rrs []dns.RR, limit int) (reply []byte, truncated bool, err error) {
	fqdn := asked + "."
	for _, rr := range rrs {
		if h := rr.Header(); strings.EqualFold(h.Name, fqdn) {
			h.Name = fqdn
		}
	}
	m := dns.Msg{
		MsgHdr: dns.MsgHdr{Id: q.id, Response: true, RecursionDesired: q.flags&flagRD != 0,
			RecursionAvailable: true, CheckingDisabled: q.flags&flagCD != 0},
		Compress: true,
		Question: []dns.Question{{Name: fqdn, Qtype: q.qtype, Qclass: q.qclass}},
		Answer:   rrs,
	}
	if q.edns {
		m.Extra = []dns.RR{&dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: ednsSize}}}
	}
	start := len(out)
	b, err := m.PackBuffer(out[start:cap(out)])
	if err != nil {
		return rawReply(out, q, rcodeServFail, false, "", 0), false, err
	}
	if len(b) > limit {
		return rawReply(out, q, rcodeSuccess, true, "", 0), true, nil
	}
	return append(out, b...), false, nil
}

package dnsfront

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// fuzzDecider answers every name, with records chosen by type, so the
// fuzzer reaches answers, strips and truncation.
type fuzzDecider struct{ rrs map[uint16][]dns.RR }

func (f fuzzDecider) Decide(_ context.Context, q *Query) Decision {
	rrs, ok := f.rrs[q.Type]
	if !ok {
		return Decision{Verdict: Verdict(q.Type % 4)}
	}
	out := copyRRs(rrs)
	for _, rr := range out {
		rr.Header().Name = dns.Fqdn(q.Name)
	}
	return Decision{Verdict: Answer, Records: out, Strip: Strip{ECH: true, QUIC: true, Hints: q.Type%2 == 0}, Tell: q.Name}
}

func newFuzzDecider(t testing.TB) fuzzDecider {
	return fuzzDecider{rrs: map[uint16][]dns.RR{
		dns.TypeA:     mustRRs(t, manyA(100)...),
		dns.TypeAAAA:  mustRRs(t, "x. 60 IN AAAA 2001:db8::1"),
		dns.TypeHTTPS: mustRRs(t, `x. 60 IN HTTPS 1 . alpn="h3,h2" ipv4hint=192.0.2.1 ech="`+echValue+`"`),
		dns.TypeSVCB:  mustRRs(t, `x. 60 IN SVCB 1 . mandatory=alpn alpn="h3" no-default-alpn`),
	}}
}

// FuzzHandle feeds any bytes to the tenant-facing handler, over UDP and
// TCP: it must not panic; a reply must be a well-formed DNS response to
// the same id that fits what the client can receive.
func FuzzHandle(f *testing.F) {
	for _, q := range [][]byte{
		packQuery(f, "www.example.com.", dns.TypeA, 1232),
		packQuery(f, "big.example.", dns.TypeA, 0),
		packQuery(f, "svc.example.", dns.TypeHTTPS, 1232),
		packQuery(f, "_dns.svc.example.", dns.TypeSVCB, 4096),
		packQuery(f, "WwW.ExAmPlE.CoM.", dns.TypeAAAA, 512),
		packQuery(f, "a.", dns.TypeTXT, 0),
	} {
		f.Add(q, false)
		f.Add(q, true)
	}
	d := newFuzzDecider(f)
	f.Fuzz(func(t *testing.T, msg []byte, tcp bool) {
		h := &handler{decide: d, timeout: DefaultQueryTimeout}
		out := h.handle(context.Background(), msg, nil, &Query{TCP: tcp})
		if len(out) == 0 {
			return
		}
		var m dns.Msg
		if err := m.Unpack(out); err != nil {
			t.Fatalf("reply %x to %x does not unpack: %v", out, msg, err)
		}
		if !m.Response || m.Id != binary.BigEndian.Uint16(msg) {
			t.Fatalf("reply %v is not a response to id %x", m.MsgHdr, msg[:2])
		}
		q, _ := parseQuery(msg)
		if limit := replyLimit(&q, tcp); len(out) > limit {
			t.Fatalf("reply of %d bytes, limit %d", len(out), limit)
		}
		for _, rr := range m.Answer {
			if s, ok := rr.(*dns.HTTPS); ok && slices.ContainsFunc(s.Value, func(kv dns.SVCBKeyValue) bool { return kv.Key() == dns.SVCB_ECHCONFIG }) {
				t.Fatalf("ech left in %v", s)
			}
		}
	})
}

// FuzzStrip builds an HTTPS record from any rdata miekg/dns accepts: with
// nothing to strip it must pack back to the same record; stripped, it must
// hold no ech, no QUIC-only ALPN and no hints, and still pack.
func FuzzStrip(f *testing.F) {
	for _, s := range []string{
		`x. 60 IN HTTPS 1 . alpn="h3,h2" port=8443 ipv4hint=192.0.2.1 ech="` + echValue + `" ipv6hint=2001:db8::1 key65000="x"`,
		`x. 60 IN HTTPS 1 . mandatory=alpn,ech alpn="h3" no-default-alpn ech="` + echValue + `"`,
		`x. 60 IN HTTPS 0 y.example.`,
		`x. 60 IN HTTPS 2 y.example. dohpath="/q{?dns}" alpn="doq,h2"`,
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		wire := wireOf(f, rr)
		f.Add([]byte(wire[len(wire)-int(rr.Header().Rdlength):]))
	}
	f.Fuzz(func(t *testing.T, rdata []byte) {
		if len(rdata) > 0xffff {
			return
		}
		wire := append([]byte{1, 'x', 0, 0, byte(dns.TypeHTTPS), 0, 1, 0, 0, 0, 60, byte(len(rdata) >> 8), byte(len(rdata))}, rdata...)
		rr, _, err := dns.UnpackRR(wire, 0)
		if err != nil {
			return
		}
		// Unstripped, the record must mean what it meant: miekg/dns keeps
		// canonical rdata byte for byte (TestStrip) and writes a
		// non-canonical one (mandatory keys out of order, an rdata short
		// of a target) canonically, which must then be stable.
		// canonically, which must then be stable. Any rdata that packs as
		// it came is kept as it came.
		// A record miekg/dns reads but will not write (an empty alpn id)
		// makes the reply a SERVFAIL (answerReply).
		kept, _ := Strip{}.Apply([]dns.RR{rr})
		buf := make([]byte, dns.Len(kept[0])+64)
		n, err := dns.PackRR(kept[0], buf, 0, nil, false)
		if err != nil {
			return
		}
		packed := string(buf[:n])
		again, _, err := dns.UnpackRR([]byte(packed), 0)
		if err != nil || wireOf(t, again) != packed {
			t.Fatalf("unstripped %v repacks as %v (%v)", rr, again, err)
		}
		rrs, _ := Strip{ECH: true, QUIC: true, Hints: true}.Apply([]dns.RR{rr})
		for _, rr := range rrs {
			for _, kv := range rr.(*dns.HTTPS).Value {
				switch v := kv.(type) {
				case *dns.SVCBECHConfig, *dns.SVCBIPv4Hint, *dns.SVCBIPv6Hint:
					t.Fatalf("%v left in %v", kv.Key(), rr)
				case *dns.SVCBAlpn:
					if slices.ContainsFunc(v.Alpn, quicOnly) || len(v.Alpn) == 0 {
						t.Fatalf("alpn %q left in %v", v.Alpn, rr)
					}
				}
			}
			_ = wireOf(t, rr)
		}
	})
}

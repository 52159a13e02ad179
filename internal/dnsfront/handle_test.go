package dnsfront

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// fakeDecider answers from a table by name and records what it was asked.
type fakeDecider struct {
	mu    sync.Mutex
	asked []Query
	by    map[string]Decision
}

func (f *fakeDecider) Decide(_ context.Context, q *Query) Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, Query{Name: q.Name, Type: q.Type, Slot: q.Slot, TCP: q.TCP})
	d, ok := f.by[q.Name]
	if !ok {
		return Decision{Verdict: NXDomain, Reason: "not_allowed_domain", Log: true}
	}
	d.Records = copyRRs(d.Records)
	return d
}

func copyRRs(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
	}
	return out
}

func mustRRs(t testing.TB, texts ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, s := range texts {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad record %q: %v", s, err)
		}
		out = append(out, rr)
	}
	return out
}

// packQuery builds a query as a stub resolver sends it.
func packQuery(t testing.TB, name string, qtype uint16, edns uint16) []byte {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.Id = 0x1234
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testHandler(d Decider, events *[]Event) *handler {
	h := &handler{decide: d, timeout: DefaultQueryTimeout}
	if events != nil {
		h.observe = func(e *Event) { *events = append(*events, *e) }
	}
	return h
}

func manyA(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("big.example. 60 IN A 198.51.100.%d", i%250+1))
	}
	return out
}

// TestHandle checks each kind of message a tenant may send and the reply
// it gets: decided answers with the question echoed as spelled, refusals
// alike, malformed messages refused without reaching the Decider.
func TestHandle(t *testing.T) {
	d := &fakeDecider{by: map[string]Decision{
		"www.example.com": {Verdict: Answer, Reason: "allowed", Records: mustRRs(t,
			"www.example.com. 60 IN CNAME edge.example.net.", "edge.example.net. 60 IN A 192.0.2.1")},
		"nodata.example":  {Verdict: Answer},
		"big.example":     {Verdict: Answer, Records: mustRRs(t, manyA(100)...)},
		"told.example":    {Verdict: NXDomain, Tell: "name is not in allow_domains"},
		"refused.example": {Verdict: Refused},
		"broken.example":  {Verdict: ServFail},
	}}
	opcode := func(b []byte) []byte { b[2] |= 2 << 3; return b } // opcode STATUS
	response := func(b []byte) []byte { b[2] |= 0x80; return b }
	twoQuestions := func(b []byte) []byte { b[5] = 2; return b }
	chaos := func(b []byte) []byte { b[len(b)-1] = 3; return b }
	tests := []struct {
		name      string
		msg       []byte
		tcp       bool
		wantRcode int // -1: no reply
		wantAns   string
		wantTC    bool
		wantEDE   string
		decided   bool
	}{
		{"A through a CNAME, 0x20 case kept", packQuery(t, "wWw.ExAmple.com.", dns.TypeA, 1232), false, dns.RcodeSuccess,
			"wWw.ExAmple.com. CNAME edge.example.net.|edge.example.net. A 192.0.2.1", false, "", true},
		{"without EDNS", packQuery(t, "www.example.com.", dns.TypeA, 0), false, dns.RcodeSuccess,
			"www.example.com. CNAME edge.example.net.|edge.example.net. A 192.0.2.1", false, "", true},
		{"NODATA", packQuery(t, "nodata.example.", dns.TypeAAAA, 1232), false, dns.RcodeSuccess, "", false, "", true},
		{"refused name: NXDOMAIN, nothing told", packQuery(t, "internal.example.", dns.TypeA, 1232), false, dns.RcodeNameError, "", false, "", true},
		{"refused name, reason told (full detail)", packQuery(t, "told.example.", dns.TypeA, 1232), false, dns.RcodeNameError, "", false, "name is not in allow_domains", true},
		{"REFUSED", packQuery(t, "refused.example.", dns.TypeTXT, 1232), false, dns.RcodeRefused, "", false, "", true},
		{"SERVFAIL", packQuery(t, "broken.example.", dns.TypeA, 1232), false, dns.RcodeServerFailure, "", false, "", true},
		{"too big for 512: truncated", packQuery(t, "big.example.", dns.TypeA, 0), false, dns.RcodeSuccess, "", true, "", true},
		{"too big for 1232: truncated", packQuery(t, "big.example.", dns.TypeA, 4096), false, dns.RcodeSuccess, "", true, "", true},
		{"the same over TCP: whole", packQuery(t, "big.example.", dns.TypeA, 0), true, dns.RcodeSuccess, "100 records", false, "", true},
		{"invalid name", packQuery(t, "bad\\032name.example.", dns.TypeA, 1232), false, dns.RcodeNameError, "", false, "", false},
		{"raw UTF-8 label", packQuery(t, "b\\195\\188cher.example.", dns.TypeA, 1232), false, dns.RcodeNameError, "", false, "", false},
		{"root", packQuery(t, ".", dns.TypeNS, 1232), false, dns.RcodeNameError, "", false, "", false},
		{"ANY", packQuery(t, "www.example.com.", dns.TypeANY, 1232), false, dns.RcodeNotImplemented, "", false, "", false},
		{"AXFR", packQuery(t, "www.example.com.", dns.TypeAXFR, 0), true, dns.RcodeNotImplemented, "", false, "", false},
		{"class CHAOS", chaos(packQuery(t, "version.bind.", dns.TypeTXT, 0)), false, dns.RcodeRefused, "", false, "", false},
		{"opcode STATUS", opcode(packQuery(t, "www.example.com.", dns.TypeA, 0)), false, dns.RcodeNotImplemented, "", false, "", false},
		{"two questions", twoQuestions(packQuery(t, "www.example.com.", dns.TypeA, 0)), false, dns.RcodeFormatError, "", false, "", false},
		{"trailing bytes", append(packQuery(t, "www.example.com.", dns.TypeA, 0), 0), false, dns.RcodeFormatError, "", false, "", false},
		{"a response is not answered", response(packQuery(t, "www.example.com.", dns.TypeA, 0)), false, -1, "", false, "", false},
		{"short", []byte{1, 2, 3}, false, -1, "", false, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d.asked = nil
			var events []Event
			h := testHandler(d, &events)
			out := h.handle(context.Background(), tc.msg, nil, &Query{Slot: 7, TCP: tc.tcp})
			if (len(d.asked) > 0) != tc.decided {
				t.Errorf("decider asked %v, want asked=%v", d.asked, tc.decided)
			}
			if len(events) != 1 || events[0].Rcode != tc.wantRcode {
				t.Fatalf("events %+v, want one with rcode %d", events, tc.wantRcode)
			}
			if tc.wantRcode < 0 {
				if len(out) != 0 {
					t.Fatalf("replied %x, want nothing", out)
				}
				return
			}
			checkReply(t, tc.msg, out, tc.tcp, tc.wantRcode, tc.wantAns, tc.wantTC, tc.wantEDE)
		})
	}
}

// checkReply unpacks a reply and compares it with what is wanted.
func checkReply(t *testing.T, query, out []byte, tcp bool, rcode int, ans string, tc bool, ede string) {
	t.Helper()
	var m dns.Msg
	if err := m.Unpack(out); err != nil {
		t.Fatalf("reply does not unpack: %v (%x)", err, out)
	}
	if m.Id != 0x1234 && len(query) >= 2 && m.Id != uint16(query[0])<<8|uint16(query[1]) {
		t.Errorf("id %x", m.Id)
	}
	if !m.Response || m.Rcode != rcode || m.Truncated != tc {
		t.Errorf("response=%v rcode=%d tc=%v, want rcode %d tc %v", m.Response, m.Rcode, m.Truncated, rcode, tc)
	}
	if limit := 512; !tcp && len(out) > limit {
		if opt := m.IsEdns0(); opt == nil || len(out) > ednsSize {
			t.Errorf("UDP reply of %d bytes", len(out))
		}
	}
	var q dns.Msg
	echoed := rcode != dns.RcodeNotImplemented && rcode != dns.RcodeFormatError // those may omit it
	if echoed && q.Unpack(query) == nil && len(q.Question) == 1 && (len(m.Question) != 1 || m.Question[0] != q.Question[0]) {
		t.Errorf("question %v, want %v echoed", m.Question, q.Question)
	}
	var got []string
	for _, rr := range m.Answer {
		got = append(got, rr.Header().Name+" "+dns.Type(rr.Header().Rrtype).String()+" "+strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	if strings.HasSuffix(ans, " records") {
		if g := fmt.Sprintf("%d records", len(m.Answer)); g != ans {
			t.Errorf("%s, want %s", g, ans)
		}
	} else if g := strings.Join(got, "|"); g != ans {
		t.Errorf("answers %q, want %q", g, ans)
	}
	gotEDE := ""
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				gotEDE = e.ExtraText
			}
		}
	}
	if gotEDE != ede {
		t.Errorf("EDE %q, want %q", gotEDE, ede)
	}
}

func TestQueryOrigDstIsLazy(t *testing.T) {
	calls := 0
	q := &Query{origDst: func() netip.AddrPort { calls++; return netip.MustParseAddrPort("192.0.2.53:53") }}
	if calls != 0 {
		t.Fatal("looked up before asked")
	}
	for range 3 {
		if got := q.OrigDst(); got.String() != "192.0.2.53:53" {
			t.Fatalf("OrigDst = %v", got)
		}
	}
	if calls != 1 {
		t.Fatalf("%d lookups, want 1", calls)
	}
}

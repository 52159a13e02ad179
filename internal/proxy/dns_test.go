package proxy

import (
	"context"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/dnsfront"
	"github.com/miekg/dns"
)

// Slots of the harness's tenants (snapshotFor: config order).
const (
	slotWeb    = 1
	slotStrict = 2
	slotAudit  = 3
)

// dnsHarness is the data path's harness with records for the DNS tests:
// an HTTPS record with ech, h3 and an address hint, a name with a TXT
// record and no address, and a CNAME chain through a denied name; extra
// is more config (tenants after the harness's three).
func dnsHarness(t *testing.T, extra ...string) *harness {
	t.Helper()
	h := newHarness(t, strings.Join(extra, ""))
	if err := h.dns.SetRecords(`www.example.com. 60 IN HTTPS 1 . alpn="h3,h2" ipv4hint=10.20.0.10 ech="AEn+DQ=="`,
		`txt.example.com. 60 IN TXT "x"`, `bi-tool.example.com. 60 IN HTTPS 1 . alpn="h2"`); err != nil {
		t.Fatal(err)
	}
	h.dns.SetCNAME("www.tracked.example", "t.blocked.example")
	h.dns.Set("t.blocked.example", "198.51.100.10")
	return h
}

// TestDNSAnswers: a tenant's DNS question is answered by its policy. A
// name it may reach gets the addresses egressfw validated (an internal one
// only under allow_internal, on any of its ports); a name outside the
// allow list, on the deny list, behind a denied CNAME, with an internal
// address or none at all gets NXDOMAIN, the refusals logged; a type the
// tenant may not ask is REFUSED. Names the rules refuse and types it may
// not ask are never sent upstream. HTTPS answers lose ech, h3 and address
// hints. A report-mode tenant gets the real answer, logged.
func TestDNSAnswers(t *testing.T) {
	h := dnsHarness(t)
	cases := []struct {
		name    string
		slot    uint32
		qname   string
		qtype   uint16
		verdict dnsfront.Verdict
		reason  string
		logged  bool
		records []string // after stripping, fields joined by one space
		offline bool     // no upstream query may be made
	}{
		{"public A", slotWeb, "www.example.com", dns.TypeA, dnsfront.Answer, "allowed", false,
			[]string{"www.example.com. 0 IN A 198.51.100.10"}, false},
		{"public AAAA", slotWeb, "www.example.com", dns.TypeAAAA, dnsfront.Answer, "allowed", false,
			[]string{"www.example.com. 0 IN AAAA 2001:db8::10"}, false},
		{"HTTPS without ech, h3 and hints", slotWeb, "www.example.com", dns.TypeHTTPS, dnsfront.Answer, "allowed", false,
			[]string{`www.example.com. 60 IN HTTPS 1 . alpn="h2"`}, false},
		{"internal name", slotWeb, "bi-tool.example.com", dns.TypeA, dnsfront.NXDomain, "internal_address", true, nil, false},
		{"internal name, HTTPS", slotWeb, "bi-tool.example.com", dns.TypeHTTPS, dnsfront.NXDomain, "internal_address", true, nil, false},
		{"internal IPv4-mapped", slotWeb, "mapped.example.com", dns.TypeAAAA, dnsfront.NXDomain, "internal_address", true, nil, false},
		{"metadata", slotWeb, "metadata.example.com", dns.TypeA, dnsfront.NXDomain, "internal_address", true, nil, false},
		{"mixed public and internal", slotWeb, "mixed.example.com", dns.TypeA, dnsfront.NXDomain, "internal_address", true, nil, false},
		{"allow_internal, any of its ports", slotWeb, "wiki.example.com", dns.TypeA, dnsfront.Answer, "allowed", false,
			[]string{"wiki.example.com. 0 IN A 10.20.0.20"}, false},
		{"deny list", slotWeb, "x.blocked.example", dns.TypeA, dnsfront.NXDomain, "denied_domain", true, nil, true},
		{"CNAME through the deny list", slotWeb, "www.tracked.example", dns.TypeA, dnsfront.NXDomain, "denied_domain", true, nil, false},
		{"no such name", slotWeb, "nope.example.com", dns.TypeA, dnsfront.NXDomain, "dns_nxdomain", false, nil, false},
		{"no address: NODATA", slotWeb, "txt.example.com", dns.TypeA, dnsfront.Answer, "dns_no_addresses", false, nil, false},
		{"type not asked for", slotWeb, "txt.example.com", dns.TypeTXT, dnsfront.Refused, "query_type", true, nil, true},
		{"not on the allow list", slotStrict, "example.com", dns.TypeA, dnsfront.NXDomain, "not_allowed_domain", true, nil, true},
		{"on the allow list", slotStrict, "www.example.com", dns.TypeA, dnsfront.Answer, "allowed", false,
			[]string{"www.example.com. 0 IN A 198.51.100.10"}, false},
		{"report mode: the internal answer", slotAudit, "bi-tool.example.com", dns.TypeA, dnsfront.Answer, "internal_address", true,
			[]string{"bi-tool.example.com. 0 IN A 10.20.0.10"}, false},
		{"report mode: any type", slotAudit, "txt.example.com", dns.TypeTXT, dnsfront.Answer, "query_type", true,
			[]string{`txt.example.com. 60 IN TXT "x"`}, false},
	}
	dec := dnsDecider{h.srv}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.dns.Queries()
			d := dec.Decide(context.Background(), &dnsfront.Query{Slot: tc.slot, Name: tc.qname, Type: tc.qtype})
			if d.Verdict != tc.verdict || d.Reason != tc.reason || d.Log != tc.logged {
				t.Fatalf("verdict %v reason %q logged %v (%s), want %v %q %v", d.Verdict, d.Reason, d.Log, d.Detail, tc.verdict, tc.reason, tc.logged)
			}
			rrs, _ := d.Strip.Apply(d.Records)
			if got := rrStrings(rrs); strings.Join(got, "\n") != strings.Join(tc.records, "\n") {
				t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.records, "\n"))
			}
			n := h.dns.Queries() - before
			if tc.offline && n != 0 {
				t.Errorf("%d upstream queries, want none", n)
			}
			// An address question is answered from the one lookup the policy
			// judged (A and AAAA), in report mode too: never asked again.
			if addr := tc.qtype == dns.TypeA || tc.qtype == dns.TypeAAAA; addr && n > 2 {
				t.Errorf("%d upstream queries, want at most the lookup's 2 (A and AAAA)", n)
			}
			if tc.verdict == dnsfront.NXDomain && tc.logged && !strings.Contains(d.Tell, tc.qname) {
				t.Errorf("told %q, want the reason (deny_detail full)", d.Tell)
			}
		})
	}
}

// TestDNSRefusalUntold: with deny_detail minimal a refused name gets no
// reason; with full the reason (never the internal address).
func TestDNSRefusalUntold(t *testing.T) {
	h := dnsHarness(t)
	st := h.srv.state.Load()
	web := st.tenants[slotWeb]
	for _, full := range []bool{false, true} {
		a := web.dns.Answer(context.Background(), st.policy, st.resolver, web.compiled, "bi-tool.example.com", dns.TypeA, full)
		switch {
		case a.Front.Verdict != dnsfront.NXDomain:
			t.Errorf("full=%v: verdict %v", full, a.Front.Verdict)
		case !full && a.Front.Tell != "":
			t.Errorf("minimal: told %q", a.Front.Tell)
		case full && (a.Front.Tell != `"bi-tool.example.com" is an internal address` || strings.Contains(a.Front.Tell, "10.20")):
			t.Errorf("full: told %q", a.Front.Tell)
		}
	}
}

// TestDNSNoTenant: a query on a slot no DNS tenant holds is refused.
func TestDNSNoTenant(t *testing.T) {
	h := dnsHarness(t)
	d := dnsDecider{h.srv}.Decide(context.Background(), &dnsfront.Query{Slot: 99, Name: "www.example.com", Type: dns.TypeA})
	if d.Verdict != dnsfront.Refused || d.Reason != "tenant_removed" || !d.Log {
		t.Fatalf("%+v, want a logged REFUSED", d)
	}
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	return out
}

// TestDNSAnswerJudgedOnce: a question of another type than an address
// (HTTPS) is asked upstream once; when its own answer runs through a
// denied CNAME (the name's cached addresses did not), enforce mode refuses
// it, and report mode answers with that same answer, never asking again
// (a second answer could differ from the one judged).
func TestDNSAnswerJudgedOnce(t *testing.T) {
	h := dnsHarness(t, `
[[tenant]]
name = "audit-deny"
uids = [1004]
mode = "report"
deny_domains = ["*.blocked.example"]
`)
	const slotAuditDeny = 4
	if err := h.dns.SetRecords(`t.blocked.example. 0 IN HTTPS 1 . alpn="h2"`); err != nil { // uncached: a second ask goes upstream
		t.Fatal(err)
	}
	h.dns.SetTTL(300) // the addresses stay cached while the CNAME appears
	dec := dnsDecider{h.srv}
	for _, tc := range []struct {
		name, qname string
		slot        uint32
		verdict     dnsfront.Verdict
	}{
		{"enforce", "fronted1.example.com", slotWeb, dnsfront.NXDomain},
		{"report", "fronted2.example.com", slotAuditDeny, dnsfront.Answer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.dns.Set(tc.qname, "198.51.100.10")
			if d := dec.Decide(context.Background(), &dnsfront.Query{Slot: tc.slot, Name: tc.qname, Type: dns.TypeA}); d.Verdict != dnsfront.Answer {
				t.Fatalf("A before the CNAME: %v %s", d.Verdict, d.Reason)
			}
			h.dns.SetCNAME(tc.qname, "t.blocked.example")
			before := h.dns.Queries()
			d := dec.Decide(context.Background(), &dnsfront.Query{Slot: tc.slot, Name: tc.qname, Type: dns.TypeHTTPS})
			if d.Verdict != tc.verdict || d.Reason != "denied_domain" || !d.Log {
				t.Errorf("HTTPS through the denied CNAME: verdict %v reason %q logged %v, want %v denied_domain logged", d.Verdict, d.Reason, d.Log, tc.verdict)
			}
			if n := h.dns.Queries() - before; n != 1 {
				t.Errorf("%d upstream queries for the HTTPS question, want 1 (the answer judged is the answer given)", n)
			}
			if tc.verdict == dnsfront.Answer && !strings.Contains(strings.Join(rrStrings(d.Records), "\n"), "t.blocked.example") {
				t.Errorf("report mode answered %q, want the judged chain", rrStrings(d.Records))
			}
		})
	}
}

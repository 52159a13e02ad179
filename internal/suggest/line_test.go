package suggest

import (
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// A connection line as egressfw writes it today (internal/proxy/record.go),
// taken from a test/netns run.
const currentLine = `{"time":"2026-11-30T22:39:05.837352989Z","level":"WARN","msg":"connection","tenant":"a","src":"10.20.0.1:49144","orig_dst":"10.20.0.20:80","proto":"http","name":"svc.example.com","decision":"would_deny","mode":"report","reason":"internal_address","detail":"name \"svc.example.com\" resolves to 10.20.0.20, which is private-use (RFC 1918)","resolved":"10.20.0.20","dns_server":"10.20.0.53:53","dialed":"10.20.0.20:80","bytes_up":79,"bytes_down":140,"peek_us":187,"dns_us":769,"connect_us":106,"total_us":2236}`

func TestParseLine(t *testing.T) {
	at := time.Date(2026, 11, 30, 22, 39, 5, 837352989, time.UTC)
	tests := []struct {
		name string
		line string
		kind Kind
		want Record // checked when kind is KindConnection
	}{
		{"current format", currentLine, KindConnection, Record{Tenant: "a", Name: "svc.example.com",
			OrigDst: netip.MustParseAddrPort("10.20.0.20:80"), Dialed: netip.MustParseAddrPort("10.20.0.20:80"),
			Resolved: []netip.Addr{netip.MustParseAddr("10.20.0.20")}, Proto: "http", Decision: "would_deny",
			Mode: "report", Reason: "internal_address", Time: at}},
		{"older format: *_ms floats, no mode", `{"time":"2026-10-01T09:00:01.25+02:00","msg":"connection","tenant":"hooks","orig_dst":"203.0.113.7:443","proto":"tls","name":"api.stripe.com","decision":"allow","reason":"allowed","peek_ms":0.041,"total_ms":220.5}`,
			KindConnection, Record{Tenant: "hooks", Name: "api.stripe.com", OrigDst: netip.MustParseAddrPort("203.0.113.7:443"),
				Proto: "tls", Decision: "allow", Reason: "allowed", Time: time.Date(2026, 10, 1, 7, 0, 1, 250000000, time.UTC)}},
		{"only tenant, name and decision", `{"tenant":"a","name":"www.example.com","decision":"deny"}`, KindConnection,
			Record{Tenant: "a", Name: "www.example.com", Decision: "deny"}},
		{"a field of another type is ignored", `{"msg":"connection","tenant":"a","name":"www.example.com","decision":"allow","mode":3,"orig_dst":["x"],"time":17}`,
			KindConnection, Record{Tenant: "a", Name: "www.example.com", Decision: "allow"}},
		{"would_deny without mode is report mode", `{"msg":"connection","tenant":"a","name":"x.example.com","decision":"would_deny","mode":"sometimes"}`,
			KindConnection, Record{Tenant: "a", Name: "x.example.com", Decision: "would_deny", Mode: "report"}},
		{"uppercase and a trailing dot are normalised", `{"msg":"connection","tenant":"a","name":"WWW.Example.COM.","decision":"allow"}`,
			KindConnection, Record{Tenant: "a", Name: "www.example.com", Decision: "allow"}},
		{"a Unicode name becomes its A-label", `{"msg":"connection","tenant":"a","name":"www.bücher.example","decision":"allow"}`,
			KindConnection, Record{Tenant: "a", Name: "www.xn--bcher-kva.example", Decision: "allow"}},
		{"an IPv4 literal", `{"msg":"connection","tenant":"a","name":"198.51.100.10","orig_dst":"198.51.100.10:80","decision":"allow"}`,
			KindConnection, Record{Tenant: "a", Literal: netip.MustParseAddr("198.51.100.10"), OrigDst: netip.MustParseAddrPort("198.51.100.10:80"), Decision: "allow"}},
		{"an IPv6 literal in brackets", `{"msg":"connection","tenant":"a","name":"[2001:db8::1]","decision":"allow"}`,
			KindConnection, Record{Tenant: "a", Literal: netip.MustParseAddr("2001:db8::1"), Decision: "allow"}},
		{"TLS without SNI is its destination", `{"msg":"connection","tenant":"a","name":"","proto":"tls","orig_dst":"[2001:db8::7]:443","decision":"deny","reason":"literal_not_allowed"}`,
			KindConnection, Record{Tenant: "a", Literal: netip.MustParseAddr("2001:db8::7"), NoSNI: true, Proto: "tls",
				OrigDst: netip.MustParseAddrPort("[2001:db8::7]:443"), Decision: "deny", Reason: "literal_not_allowed"}},
		{"a name that does not normalise", `{"msg":"connection","tenant":"a","name":"evil\"]\nx","decision":"deny","reason":"invalid name"}`,
			KindConnection, Record{Tenant: "a", BadName: true, Decision: "deny"}},
		{"journalctl -o json entry", `{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1764496800000000","MESSAGE":"{\"msg\":\"connection\",\"tenant\":\"web\",\"name\":\"a.github.io\",\"decision\":\"allow\"}"}`,
			KindConnection, Record{Tenant: "web", Name: "a.github.io", Decision: "allow", Time: time.UnixMicro(1764496800000000).UTC()}},
		{"journal MESSAGE as bytes", `{"__REALTIME_TIMESTAMP":"1","MESSAGE":[123,34,116,101,110,97,110,116,34,58,34,119,34,44,34,110,97,109,101,34,58,34,120,46,105,111,34,44,34,100,101,99,105,115,105,111,110,34,58,34,97,108,108,111,119,34,125]}`,
			KindConnection, Record{Tenant: "w", Name: "x.io", Decision: "allow", Time: time.UnixMicro(1).UTC()}},
		{"syslog prefix", `Nov 30 22:39:05 host egressfw[12]: {"msg":"connection","tenant":"a","name":"www.example.com","decision":"allow"}`,
			KindConnection, Record{Tenant: "a", Name: "www.example.com", Decision: "allow"}},
		{"a later request of a connection, let through by report mode", `{"msg":"request","tenant":"a","src":"10.20.0.1:49144","orig_dst":"10.20.0.20:80","proto":"http","name":"admin.example.com","decision":"would_deny","mode":"report","reason":"internal_address","request":2,"dialed":"10.20.0.20:80","resolved":"10.20.0.20"}`,
			KindConnection, Record{Tenant: "a", Name: "admin.example.com", OrigDst: netip.MustParseAddrPort("10.20.0.20:80"),
				Dialed: netip.MustParseAddrPort("10.20.0.20:80"), Resolved: []netip.Addr{netip.MustParseAddr("10.20.0.20")},
				Proto: "http", Decision: "would_deny", Mode: "report", Reason: "internal_address"}},
		{"another message", `{"time":"2026-11-30T22:39:05Z","level":"INFO","msg":"config reloaded","reload":1}`, KindOther, Record{}},
		{"systemd's text in the unit's journal", `{"MESSAGE":"Stopped egressfw.service.","__REALTIME_TIMESTAMP":"1"}`, KindOther, Record{}},
		{"not JSON", `hello`, KindGarbage, Record{}},
		{"truncated", `{"msg":"connection","tenant":"a","name":"www.ex`, KindGarbage, Record{}},
		{"null", `null`, KindGarbage, Record{}},
		{"empty object", `{}`, KindGarbage, Record{}},
		{"no tenant", `{"msg":"connection","name":"www.example.com","decision":"allow"}`, KindGarbage, Record{}},
		{"a tenant name egressfw cannot have", `{"msg":"connection","tenant":"a\"\n[x]","name":"www.example.com","decision":"allow"}`, KindGarbage, Record{}},
		{"unknown decision", `{"msg":"connection","tenant":"a","name":"www.example.com","decision":"perhaps"}`, KindGarbage, Record{}},
		{"empty journal MESSAGE", `{"MESSAGE":"","__REALTIME_TIMESTAMP":"1"}`, KindGarbage, Record{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, k := ParseLine([]byte(tc.line))
			if k != tc.kind {
				t.Fatalf("kind %d, want %d (record %+v)", k, tc.kind, r)
			}
			if k == KindConnection && !equalRecord(r, tc.want) {
				t.Errorf("record\n %+v\nwant\n %+v", r, tc.want)
			}
		})
	}
}

func equalRecord(a, b Record) bool {
	if !slices.Equal(a.Resolved, b.Resolved) || !a.Time.Equal(b.Time) {
		return false
	}
	a.Resolved, b.Resolved, a.Time, b.Time = nil, nil, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// TestReadRecordedLogs reads the files under testdata: a test/netns run
// (report mode, a reload, enforce mode), lines of an older version,
// journalctl -o json output, other messages and garbage.
func TestReadRecordedLogs(t *testing.T) {
	tests := []struct {
		file string
		want Stats
	}{
		{"netns-run.jsonl", Stats{Lines: 20, Used: 16, Other: 4}},
		{"older.jsonl", Stats{Lines: 7, Used: 6, Other: 1}},
		{"journal.json", Stats{Lines: 4, Used: 4}},
		{"other.txt", Stats{Lines: 4, Other: 4}},
		{"garbage.txt", Stats{Lines: 15, Garbage: 15}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, err := Read(f, Filter{}, NewLog())
			if err != nil || st != tc.want {
				t.Errorf("Read: %+v, %v; want %+v", st, err, tc.want)
			}
		})
	}
}

func TestReadMergesAndFilters(t *testing.T) {
	in := strings.Join([]string{
		`{"time":"2026-11-30T10:00:00Z","msg":"connection","tenant":"a","name":"WWW.Example.COM.","decision":"allow"}`,
		`{"time":"2026-11-30T11:00:00Z","msg":"connection","tenant":"a","name":"www.example.com","decision":"allow"}`,
		`{"time":"2026-11-30T12:00:00Z","msg":"connection","tenant":"a","name":"www.example.com","decision":"error","reason":"upstream_refused"}`,
		`{"time":"2026-11-30T09:00:00Z","msg":"connection","tenant":"a","name":"old.example.com","decision":"allow"}`,
		`{"msg":"connection","tenant":"a","name":"undated.example.com","decision":"allow"}`,
		`{"time":"2026-11-30T12:00:00Z","msg":"connection","tenant":"b","name":"www.example.com","decision":"allow"}`,
		"", "   ",
		strings.Repeat("x", MaxLine+10),
		`{"msg":"connection","tenant":"a","name":"after.example.com","decision":"allow"}`,
	}, "\n")
	l := NewLog()
	st, err := Read(strings.NewReader(in), Filter{Tenant: "a", Since: time.Date(2026, 11, 30, 9, 30, 0, 0, time.UTC)}, l)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Lines: 9, Used: 5, Garbage: 2, Filtered: 1, Before: 1}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	a := l.Tenants["a"]
	if a == nil || len(l.Tenants) != 1 {
		t.Fatalf("tenants %v, want only a", l.Tenants)
	}
	u := a.Names["www.example.com"]
	if u == nil || u.Count != 3 || u.Failed != 1 || !u.Last.Equal(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("www.example.com: %+v, want 3 connections, 1 failed, last 12:00", u)
	}
	if a.Names["undated.example.com"] == nil || a.Names["after.example.com"] == nil || a.Names["old.example.com"] != nil {
		t.Errorf("names %v: want undated and after (no time: kept), not old (before --since)", a.Names)
	}
}

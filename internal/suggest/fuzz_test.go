package suggest

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsname"
)

// seedLines adds every line of the testdata logs to f.
func seedLines(f *testing.F) {
	for _, name := range []string{"netns-run.jsonl", "older.jsonl", "journal.json", "other.txt", "garbage.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			f.Add(l)
		}
	}
}

// FuzzParseLine: any line is classified without panicking, and what a
// connection record carries is checked: a valid tenant name, a normalised
// name, a plain reason code.
func FuzzParseLine(f *testing.F) {
	seedLines(f)
	f.Add([]byte(currentLine))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, k := ParseLine(b)
		if k != KindConnection {
			return
		}
		if !tenantRE.MatchString(r.Tenant) || !validDecision(r.Decision) {
			t.Fatalf("record %+v from %q", r, b)
		}
		if r.Name != "" {
			if n, err := dnsname.Normalize(r.Name); err != nil || n != r.Name {
				t.Fatalf("name %q is not normalised (%q, %v)", r.Name, n, err)
			}
		}
		if r.Reason != "" && !codeRE.MatchString(r.Reason) {
			t.Fatalf("reason %q", r.Reason)
		}
	})
}

// FuzzFragment: whatever the log holds, each tenant's fragment pasted into
// its table loads as a config with that one tenant, and its allow list
// allows every name the tenant was seen reaching.
func FuzzFragment(f *testing.F) {
	seedLines(f) // single lines: whole files make each execution (and minimising) slow
	f.Add([]byte(`{"tenant":"a","name":"a.b.example.com","decision":"allow"}` + "\n" +
		`{"tenant":"a","name":"c.example.com","decision":"would_deny","reason":"internal_port","orig_dst":"10.0.0.1:443"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := NewLog()
		if _, err := Read(bytes.NewReader(b), Filter{}, l); err != nil {
			t.Fatal(err)
		}
		for name, tl := range l.Tenants {
			var w strings.Builder
			if err := NewPlan(name, tl, nil, Options{Collapse: 2}).WriteFragment(&w, "x"); err != nil {
				t.Fatal(err)
			}
			cfg := mustConfig(t, splice(name, w.String()))
			if len(cfg.Tenants) != 1 || cfg.Tenants[0].Name != name {
				t.Fatalf("pasting gave tenants %+v:\n%s", cfg.Tenants, w.String())
			}
			got := cfg.Tenants[0]
			for n := range tl.Names {
				if !matches(got.AllowDomains, n) && !hostIn(got, n) {
					t.Fatalf("%s was reached but the pasted list does not allow it:\n%s", n, w.String())
				}
			}
		}
	})
}

// hostIn reports whether an allow_internal host entry names n (which puts
// n on the allow list).
func hostIn(t config.Tenant, n string) bool {
	for _, e := range t.AllowInternal {
		if e.Host == n {
			return true
		}
	}
	return false
}

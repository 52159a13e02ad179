package suggest

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"
)

// matches is egressfw's allow_domains rule (internal/policy patternSet):
// "*" any name, "*.d" strict subdomains of d (not d), else the name itself.
func matches(patterns []string, name string) bool {
	for _, p := range patterns {
		if d, ok := strings.CutPrefix(p, "*."); ok && strings.HasSuffix(name, "."+d) || p == name || p == "*" {
			return true
		}
	}
	return false
}

func TestCollapse(t *testing.T) {
	tests := []struct {
		name    string
		seen    []string // as logged: normalised on the way in, like ParseLine does
		refused []string // names enforce mode denied as not on the allow list
		min     int
		want    []string
		kept    []string // wildcards not suggested because of refused names
	}{
		{"a single subdomain stays exact", []string{"www.example.com"}, nil, 2, []string{"www.example.com"}, nil},
		{"two subdomains collapse", []string{"a.example.com", "b.example.com"}, nil, 2, []string{"*.example.com"}, nil},
		{"apex and subdomains: the apex stays, *. does not match it", []string{"example.com", "a.example.com", "b.example.com"}, nil, 2,
			[]string{"example.com", "*.example.com"}, nil},
		{"apex and one subdomain", []string{"example.com", "www.example.com"}, nil, 2, []string{"example.com", "www.example.com"}, nil},
		{"deeper subdomains count for the registrable domain", []string{"a.b.example.com", "c.example.com"}, nil, 2, []string{"*.example.com"}, nil},
		{"co.uk sites stay apart", []string{"a.co.uk", "b.co.uk"}, nil, 2, []string{"a.co.uk", "b.co.uk"}, nil},
		{"within one co.uk site", []string{"www.bbc.co.uk", "news.bbc.co.uk"}, nil, 2, []string{"*.bbc.co.uk"}, nil},
		{"github.io users' sites stay apart (private suffix)", []string{"a.github.io", "b.github.io", "c.github.io"}, nil, 2,
			[]string{"a.github.io", "b.github.io", "c.github.io"}, nil},
		{"within one github.io site", []string{"x.a.github.io", "y.a.github.io"}, nil, 2, []string{"*.a.github.io"}, nil},
		{"amazonaws buckets stay apart", []string{"one.s3.amazonaws.com", "two.s3.amazonaws.com"}, nil, 2,
			[]string{"one.s3.amazonaws.com", "two.s3.amazonaws.com"}, nil},
		{"public suffixes themselves stay exact", []string{"github.io", "co.uk", "com"}, nil, 2, []string{"co.uk", "com", "github.io"}, nil},
		{"single labels stay exact", []string{"intranet", "localhost"}, nil, 2, []string{"intranet", "localhost"}, nil},
		{"uppercase and trailing dots merge", []string{"WWW.Example.COM.", "www.example.com", "Api.EXAMPLE.com"}, nil, 2, []string{"*.example.com"}, nil},
		{"Unicode names collapse as A-labels", []string{"www.bücher.example", "shop.BÜCHER.example"}, nil, 2, []string{"*.xn--bcher-kva.example"}, nil},
		{"punycode under an IDN TLD", []string{"www.example.xn--p1ai", "shop.example.xn--p1ai", "xn--p1ai"}, nil, 2,
			[]string{"*.example.xn--p1ai", "xn--p1ai"}, nil},
		{"threshold not reached", []string{"a.example.com", "b.example.com"}, nil, 3, []string{"a.example.com", "b.example.com"}, nil},
		{"collapse off", []string{"a.example.com", "b.example.com", "c.example.com"}, nil, 0,
			[]string{"a.example.com", "b.example.com", "c.example.com"}, nil},
		{"a refused name under the domain keeps the names exact", []string{"a.example.com", "b.example.com"}, []string{"evil.example.com"}, 2,
			[]string{"a.example.com", "b.example.com"}, []string{"*.example.com"}},
		{"a refused apex does not block (the wildcard does not match it)", []string{"a.example.com", "b.example.com"}, []string{"example.com"}, 2,
			[]string{"*.example.com"}, nil},
		{"a refused name elsewhere does not block", []string{"a.example.com", "b.example.com"}, []string{"a.example.net"}, 2,
			[]string{"*.example.com"}, nil},
		{"two domains side by side", []string{"b.example.org", "a.example.org", "www.example.com"}, nil, 2,
			[]string{"www.example.com", "*.example.org"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names := map[string]*Use{}
			for _, raw := range tc.seen {
				var r Record
				r.setName(raw)
				if r.Name == "" {
					t.Fatalf("%q does not normalise", raw)
				}
				if names[r.Name] == nil {
					names[r.Name] = &Use{}
				}
				names[r.Name].Count++
			}
			refused := map[string]bool{}
			for _, n := range tc.refused {
				refused[n] = true
			}
			entries, kept := Collapse(names, refused, tc.min)
			var got, gotKept []string
			for _, e := range entries {
				got = append(got, e.Pattern)
			}
			for _, k := range kept {
				gotKept = append(gotKept, k.Wildcard)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(gotKept, tc.kept) {
				t.Fatalf("Collapse = %q (kept %q), want %q (kept %q)", got, gotKept, tc.want, tc.kept)
			}
			for n := range names {
				if !matches(got, n) {
					t.Errorf("%s was seen but the patterns do not match it", n)
				}
			}
			for _, n := range tc.refused {
				if matches(got, n) {
					t.Errorf("%s was refused in enforce mode but the patterns match it", n)
				}
			}
			for _, p := range got {
				if base, ok := strings.CutPrefix(p, "*."); ok {
					if s, _ := publicsuffix.PublicSuffix(base); s == base {
						t.Errorf("%s spans the public suffix %s", p, s)
					}
				}
			}
		})
	}
}

// TestCollapseCounts: a wildcard sums its names' connections and keeps the
// latest time; entries list the names they stand for.
func TestCollapseCounts(t *testing.T) {
	at := func(h int) Use { return Use{Count: h, Failed: h % 2, Last: timeAt(h)} }
	a, b := at(1), at(4)
	entries, _ := Collapse(map[string]*Use{"a.example.com": &a, "b.example.com": &b}, nil, 2)
	if len(entries) != 1 {
		t.Fatalf("entries %+v", entries)
	}
	e := entries[0]
	if e.Count != 5 || e.Failed != 1 || !e.Last.Equal(timeAt(4)) || !slices.Equal(e.Names, []string{"a.example.com", "b.example.com"}) {
		t.Errorf("entry %+v, want 5 connections, 1 failed, last at 4h, both names", e)
	}
}

package suggest

import (
	"sort"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Entry is one suggested allow_domains pattern and the names seen that it
// stands for.
type Entry struct {
	Pattern string   // "www.example.com", "example.com" or "*.example.com"
	Names   []string // the names seen that it covers, sorted
	Use
	domain string // the registrable domain, for sorting
}

// Wildcard reports whether the entry is a "*." pattern.
func (e Entry) Wildcard() bool { return strings.HasPrefix(e.Pattern, "*.") }

// Kept says why names were not collapsed to a wildcard.
type Kept struct {
	Wildcard string   // the pattern not suggested
	Because  []string // names under it that egressfw refused as not on the allow list
}

// Collapse turns the names seen into allow_domains patterns. Names under
// one registrable domain (public suffix + one label, from the public suffix
// list, its private section included) become "*.domain" when at least min
// distinct subdomains were seen (min < 2 never collapses); the domain
// itself, when seen, stays an entry of its own, since "*.example.com" does
// not match "example.com" in egressfw. A wildcard is never suggested:
//
//   - across a public suffix: "a.co.uk" and "b.co.uk", or "a.github.io"
//     and "b.github.io", are separate sites and stay separate names;
//   - for a name that is itself a public suffix or has no registrable
//     domain ("github.io", "localhost"): it stays exact;
//   - over a name in refused (names egressfw denied because they were not
//     on the allow list: the wildcard would let them in); such names are
//     reported in the returned Kept.
func Collapse(names map[string]*Use, refused map[string]bool, min int) ([]Entry, []Kept) {
	groups, refusedIn := map[string][]string{}, map[string][]string{}
	for n := range names {
		d := registrable(n)
		groups[d] = append(groups[d], n)
	}
	for n := range refused {
		if d := registrable(n); d != n {
			refusedIn[d] = append(refusedIn[d], n) // strictly below d
		}
	}
	var out []Entry
	var kept []Kept
	for d, ns := range groups {
		sort.Strings(ns)
		var subs []string
		for _, n := range ns {
			if n != d {
				subs = append(subs, n)
			} else {
				out = append(out, exact(n, names[n], d))
			}
		}
		if min < 2 || len(subs) < min {
			for _, n := range subs {
				out = append(out, exact(n, names[n], d))
			}
			continue
		}
		if blocked := refusedIn[d]; len(blocked) > 0 {
			sort.Strings(blocked)
			kept = append(kept, Kept{Wildcard: "*." + d, Because: blocked})
			for _, n := range subs {
				out = append(out, exact(n, names[n], d))
			}
			continue
		}
		e := Entry{Pattern: "*." + d, Names: subs, domain: d}
		for _, n := range subs {
			e.merge(names[n])
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return entryLess(out[i], out[j]) })
	sort.Slice(kept, func(i, j int) bool { return kept[i].Wildcard < kept[j].Wildcard })
	return out, kept
}

func exact(n string, u *Use, domain string) Entry {
	e := Entry{Pattern: n, Names: []string{n}, domain: domain}
	e.merge(u)
	return e
}

// entryLess orders by registrable domain, then the domain itself, its
// wildcard, and the other names alphabetically.
func entryLess(a, b Entry) bool {
	if a.domain != b.domain {
		return a.domain < b.domain
	}
	rank := func(e Entry) int {
		switch {
		case e.Pattern == e.domain:
			return 0
		case e.Wildcard():
			return 1
		}
		return 2
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra < rb
	}
	return a.Pattern < b.Pattern
}

// registrable returns n's registrable domain (public suffix plus one
// label), or n itself when it is a public suffix or has no suffix to
// stand on: such a name has no domain to collapse to.
func registrable(n string) string {
	d, err := publicsuffix.EffectiveTLDPlusOne(n)
	if err != nil {
		return n
	}
	return d
}

package config

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// UIDRange is an inclusive range of uids, written "100000-165535" or, for
// one uid, "100000".
type UIDRange struct{ First, Last uint32 }

// UnmarshalText parses "FIRST-LAST" or "UID".
func (r *UIDRange) UnmarshalText(b []byte) error {
	first, last, isRange := strings.Cut(string(b), "-")
	if !isRange {
		last = first
	}
	f, err1 := strconv.ParseUint(first, 10, 32)
	l, err2 := strconv.ParseUint(last, 10, 32)
	if err1 != nil || err2 != nil || f > l {
		return fmt.Errorf("not a uid range like \"100000-165535\" (first <= last): %q", b)
	}
	r.First, r.Last = uint32(f), uint32(l)
	return nil
}

// MarshalText prints the range as UnmarshalText reads it.
func (r UIDRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// String prints "FIRST-LAST", or "UID" for a single uid.
func (r UIDRange) String() string {
	if r.First == r.Last {
		return strconv.FormatUint(uint64(r.First), 10)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Overlaps reports whether the ranges share a uid.
func (r UIDRange) Overlaps(o UIDRange) bool { return r.First <= o.Last && o.First <= r.Last }

// uidClaim is a uid or uid range a tenant claims, for overlap checks.
type uidClaim struct {
	r      UIDRange
	key    string // "uids" or "uid_ranges"
	tenant string
}

// checkUIDs validates a tenant's uids and uid_ranges and reports any that
// another tenant already claims, naming both.
func checkUIDs(v *validator, key string, t *Tenant, claims *[]uidClaim) {
	var mine []uidClaim
	for _, u := range t.UIDs {
		switch u {
		case 0:
			v.add(key+".uids", "uid 0 is root: every root process would be this tenant, and a root process can leave any cgroup; run the tenant as another user")
			continue
		case math.MaxUint32:
			v.add(key+".uids", "uid 4294967295 is (uid_t)-1, no process has it")
			continue
		}
		mine = append(mine, uidClaim{UIDRange{u, u}, "uids", t.Name})
	}
	for _, r := range t.UIDRanges {
		switch {
		case r.First == 0:
			v.add(key+".uid_ranges", "%s contains uid 0 (root): every root process would be this tenant", r)
			continue
		case r.Last == math.MaxUint32:
			v.add(key+".uid_ranges", "%s contains uid 4294967295, (uid_t)-1; end it below", r)
			continue
		}
		mine = append(mine, uidClaim{r, "uid_ranges", t.Name})
	}
	for _, c := range mine {
		for _, o := range *claims {
			if !c.r.Overlaps(o.r) {
				continue
			}
			msg := fmt.Sprintf("%s is also claimed by tenant %q", c, o.tenant)
			if o.r != c.r || o.key != c.key {
				msg += fmt.Sprintf(" (its %s)", o)
			}
			v.add(key+"."+c.key, "%s", msg)
		}
	}
	*claims = append(*claims, mine...)
}

// String names the claim: "uid 5" or "uid range 100000-165535".
func (c uidClaim) String() string {
	if c.key == "uids" {
		return "uid " + c.r.String()
	}
	return "uid range " + c.r.String()
}

// checkFilePath validates an absolute file path key.
func checkFilePath(v *validator, key, p string) {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsAny(p, "\x00\n") {
		v.add(key, "%q must be a clean absolute path", p)
	}
}

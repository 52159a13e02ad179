package nftspec

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// UIDRange is an inclusive range of socket owner uids, such as the
// subordinate uids /etc/subuid gives a user (a process in a user namespace
// mapped onto them owns its sockets as those uids).
type UIDRange struct{ First, Last uint32 }

// String prints the range as nft does: "1000" or "100000-165535".
func (r UIDRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// UIDIntervals returns the tenant's uids and uid ranges as sorted,
// disjoint, non-adjacent intervals: how the interval map stores them.
func (t *Tenant) UIDIntervals() []UIDRange {
	rs := slices.Clone(t.UIDRanges)
	for _, u := range t.UIDs {
		rs = append(rs, UIDRange{u, u})
	}
	slices.SortFunc(rs, func(a, b UIDRange) int { return cmp.Compare(a.First, b.First) })
	var out []UIDRange
	for _, r := range rs {
		if n := len(out); n > 0 && uint64(r.First) <= uint64(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// validateUIDs checks every tenant's ranges and that no uid belongs to two
// tenants. uid 4294967295 is (uid_t)-1, which owns no socket; ranges stop
// below it, so every interval has an end element.
func (s *Spec) validateUIDs() error {
	type owned struct {
		r      UIDRange
		tenant string
	}
	var all []owned
	for _, t := range s.Tenants {
		for _, r := range t.UIDRanges {
			if r.First > r.Last || r.Last == math.MaxUint32 {
				return fmt.Errorf("tenant %q: uid range %d-%d: want first <= last < 4294967295", t.Name, r.First, r.Last)
			}
		}
		for _, u := range t.UIDs {
			if u == math.MaxUint32 {
				return fmt.Errorf("tenant %q: uid 4294967295 is (uid_t)-1", t.Name)
			}
		}
		for _, r := range t.UIDIntervals() {
			all = append(all, owned{r, t.Name})
		}
	}
	slices.SortFunc(all, func(a, b owned) int { return cmp.Compare(a.r.First, b.r.First) })
	for i := 1; i < len(all); i++ {
		if a, b := all[i-1], all[i]; b.r.First <= a.r.Last {
			return fmt.Errorf("tenant %q: uid %d already used by %q (uids %s and %s)", b.tenant, b.r.First, a.tenant, b.r, a.r)
		}
	}
	return nil
}

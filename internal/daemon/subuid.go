package daemon

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/nft/nftspec"
	"github.com/egressfw/egressfw/internal/subid"
)

// uidRanges is what the kernel's uid map holds beyond each tenant's uids:
// its uid_ranges and the sub-uids it follows, by tenant name.
type uidRanges map[string][]nftspec.UIDRange

func (a uidRanges) equal(b uidRanges) bool { return maps.EqualFunc(a, b, slices.Equal) }

// uidClaim is a uid range a tenant holds, and where it comes from.
type uidClaim struct {
	r      nftspec.UIDRange
	tenant string
	what   string
}

// loadUIDRanges reads the sub-uid and passwd files cfg names and computes
// every tenant's ranges (see tenantUIDRanges).
func loadUIDRanges(cfg *config.Config) (uidRanges, []string, error) {
	db, err := subid.Load(cfg.Firewall.SubUIDFile, cfg.Firewall.PasswdFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read sub-uids: %w", err)
	}
	return tenantUIDRanges(cfg, db)
}

// tenantUIDRanges computes every tenant's uid_ranges plus, with
// follow_subuid, the sub-uids db gives its uids. Warnings name the lines
// of the sub-uid file that were skipped and the sub-uids of a tenant's uids
// that it does not cover (follow_subuid = false). A sub-uid range holding
// uid 0, or one that another tenant's uids or ranges overlap, is an error
// naming both: the kernel map cannot give one uid two tenants.
func tenantUIDRanges(cfg *config.Config, db *subid.DB) (uidRanges, []string, error) {
	file := cfg.Firewall.SubUIDFile
	var warnings []string
	for _, err := range db.Bad {
		warnings = append(warnings, fmt.Sprintf("%s %v: skipped (newuidmap ignores it too)", file, err))
	}
	out := uidRanges{}
	var claims []uidClaim
	for _, t := range cfg.Tenants {
		var rs []nftspec.UIDRange
		for _, r := range t.UIDRanges {
			rs = append(rs, nftspec.UIDRange{First: r.First, Last: r.Last})
			claims = append(claims, uidClaim{nftspec.UIDRange{First: r.First, Last: r.Last}, t.Name, "uid range " + r.String()})
		}
		for _, u := range t.UIDs {
			claims = append(claims, uidClaim{nftspec.UIDRange{First: u, Last: u}, t.Name, fmt.Sprintf("uid %d", u)})
			for _, e := range db.Of(u) {
				r := nftspec.UIDRange{First: e.Range.First, Last: e.Range.Last}
				what := fmt.Sprintf("sub-uids %s of uid %d, %s line %d: %s", r, u, file, e.Line, e)
				switch {
				case !t.FollowSubUID:
					if !covered(t, e.Range) {
						warnings = append(warnings, fmt.Sprintf("tenant %q: %s: not covered, a process in a user namespace mapped onto them is not this tenant; set follow_subuid = true or add them to uid_ranges", t.Name, what))
					}
					continue
				case r.First == 0:
					return nil, warnings, fmt.Errorf("tenant %q: %s: holds uid 0 (root)", t.Name, what)
				}
				rs = append(rs, r)
				claims = append(claims, uidClaim{r, t.Name, what})
			}
		}
		if len(rs) > 0 {
			out[t.Name] = rs
		}
	}
	if err := overlap(claims); err != nil {
		return nil, warnings, err
	}
	return out, warnings, nil
}

// covered reports whether r lies inside the tenant's uids and uid_ranges.
func covered(t config.Tenant, r subid.Range) bool {
	nt := nftspec.Tenant{UIDs: t.UIDs}
	for _, u := range t.UIDRanges {
		nt.UIDRanges = append(nt.UIDRanges, nftspec.UIDRange{First: u.First, Last: u.Last})
	}
	for _, have := range nt.UIDIntervals() {
		if have.First <= r.First && r.Last <= have.Last {
			return true
		}
	}
	return false
}

// overlap reports a uid claimed by two tenants, naming both claims. After
// sorting by first uid, a claim that overlaps an earlier one of another
// tenant also overlaps the earlier claim reaching furthest, unless an
// earlier pair already overlaps: one sweep finds a pair if there is one.
func overlap(claims []uidClaim) error {
	slices.SortStableFunc(claims, func(a, b uidClaim) int { return cmp.Compare(a.r.First, b.r.First) })
	var reach *uidClaim
	for i := range claims {
		c := &claims[i]
		if reach != nil && c.r.First <= reach.r.Last && c.tenant != reach.tenant {
			return fmt.Errorf("uids claimed twice: tenant %q (%s) and tenant %q (%s)", reach.tenant, reach.what, c.tenant, c.what)
		}
		if reach == nil || c.r.Last > reach.r.Last {
			reach = c
		}
	}
	return nil
}

// guardUIDRanges is tenantUIDRanges for the guard, which must install what
// it can: every tenant's uids and uid_ranges, then, with follow_subuid, the
// parts of its sub-uid ranges that no earlier claim holds, never uid 0.
func guardUIDRanges(cfg *config.Config, db *subid.DB) (uidRanges, error) {
	out, _, err := tenantUIDRanges(cfg, &subid.DB{})
	if err != nil {
		return nil, err
	}
	var taken []nftspec.UIDRange
	for _, t := range cfg.Tenants {
		taken = append(taken, out[t.Name]...)
		for _, u := range t.UIDs {
			taken = append(taken, nftspec.UIDRange{First: u, Last: u})
		}
	}
	for _, t := range cfg.Tenants {
		if !t.FollowSubUID {
			continue
		}
		for _, u := range t.UIDs {
			for _, e := range db.Of(u) {
				r := nftspec.UIDRange{First: max(e.Range.First, 1), Last: e.Range.Last}
				for _, piece := range uncovered(r, taken) {
					out[t.Name] = append(out[t.Name], piece)
					taken = append(taken, piece)
				}
			}
		}
	}
	return out, nil
}

// uncovered returns the parts of r that no range of taken holds.
func uncovered(r nftspec.UIDRange, taken []nftspec.UIDRange) []nftspec.UIDRange {
	if r.First > r.Last {
		return nil
	}
	for _, c := range taken {
		if c.Last < r.First || c.First > r.Last {
			continue
		}
		var out []nftspec.UIDRange
		if c.First > r.First {
			out = append(out, uncovered(nftspec.UIDRange{First: r.First, Last: c.First - 1}, taken)...)
		}
		if c.Last < r.Last {
			out = append(out, uncovered(nftspec.UIDRange{First: c.Last + 1, Last: r.Last}, taken)...)
		}
		return out
	}
	return []nftspec.UIDRange{r}
}

// CheckHost checks cfg against the host's sub-uid and passwd files, as run
// would: an error where they would make a uid belong to two tenants, and
// warnings that do not stop egressfw (skipped lines, sub-uids a tenant
// leaves uncovered, and the config's own: config.Warnings).
func CheckHost(cfg *config.Config) (warnings []string, err error) {
	_, warnings, err = loadUIDRanges(cfg)
	return append(warnings, cfg.Warnings()...), err
}

// followSubUIDs watches the sub-uid and passwd files of cfg; each change
// arrives on the returned channel (see refreshUIDs).
func followSubUIDs(ctx context.Context, cfg *config.Config) (<-chan struct{}, error) {
	ch, err := subid.Watch(ctx, cfg.Firewall.SubUIDFile, cfg.Firewall.PasswdFile)
	if err != nil {
		return nil, fmt.Errorf("follow sub-uids: %w", err)
	}
	return ch, nil
}

// refreshUIDs re-reads the sub-uid and passwd files after a change and, if
// the tenants' ranges changed, re-applies the rules with them. A change
// that cannot be applied (an overlap, uid 0, an unreadable file, a kernel
// error) is logged and the ranges in force are kept.
func (d *Daemon) refreshUIDs(ctx context.Context) {
	cur := d.gen.Load()
	if cur == nil {
		return
	}
	ranges, warnings, err := loadUIDRanges(cur.cfg)
	if err != nil {
		d.log.Error("sub-uid change not applied; keeping the uid ranges in force", "err", err)
		return
	}
	if ranges.equal(cur.uids) {
		return
	}
	for _, w := range warnings {
		d.log.Warn(w)
	}
	next := *cur
	next.uids = ranges
	err = d.rules.apply(ctx, &next, func() error { return nil })
	d.st.lastApply.Store(event(err))
	if err != nil {
		d.log.Error("sub-uid change not applied; keeping the uid ranges in force", "err", err)
		return
	}
	d.gen.Store(&next)
	d.log.Info("sub-uids changed; uid ranges applied", "tenants_with_ranges", len(ranges))
}

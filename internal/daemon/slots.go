package daemon

import (
	"fmt"

	"github.com/egressfw/egressfw/internal/config"
)

// slotTable assigns each tenant name a slot (its conntrack-mark value and,
// offset by the base port, its listener port) that stays the same across
// reloads for as long as the process lives. A reload that reorders, adds or
// removes tenants therefore never hands a live port, and the connections
// queued on it, to a different tenant.
type slotTable struct {
	byName map[string]uint32
	max    uint32
}

func newSlotTable(max uint32) *slotTable {
	return &slotTable{byName: map[string]uint32{}, max: max}
}

// plan returns the slot of every name, keeping existing ones and giving new
// names the lowest free slots; names no longer present release theirs. The
// table is unchanged until commit, so a reload that fails later leaves it
// as it was.
func (s *slotTable) plan(names []string) (map[string]uint32, error) {
	out := make(map[string]uint32, len(names))
	used := map[uint32]bool{}
	for _, n := range names {
		if slot, ok := s.byName[n]; ok {
			out[n] = slot
			used[slot] = true
		}
	}
	next := uint32(1)
	for _, n := range names {
		if _, ok := out[n]; ok {
			continue
		}
		for used[next] {
			next++
		}
		if next > s.max {
			return nil, fmt.Errorf("no free tenant slot for %q: %d slots in use, at most %d", n, len(used), s.max)
		}
		out[n] = next
		used[next] = true
	}
	return out, nil
}

// commit makes a planned assignment current.
func (s *slotTable) commit(slots map[string]uint32) { s.byName = slots }

// tenantNames lists cfg's tenants by name, in config order.
func tenantNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Tenants))
	for i, t := range cfg.Tenants {
		names[i] = t.Name
	}
	return names
}

package daemon

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/egressfw/egressfw/internal/config"
)

// slotDrain is how long a slot freed by a reload stays out of use. The
// reload that frees a slot closes its listener, and the kernel resets the
// connections still queued on it; what can remain are conntrack entries
// that carry the slot in their mark: a SYN that was never answered (a full
// accept queue drops it) is retransmitted with the old entry, re-marked by
// the output chain and handed to whatever listener holds the slot's port.
// Such an entry lives at most nf_conntrack_tcp_timeout_syn_sent (120s by
// default; SYN_RECV: 60s), so after slotDrain no connection of the old
// tenant can reach the slot's next holder.
const slotDrain = 2 * time.Minute

// slotTable assigns each tenant name a slot (its conntrack-mark value and,
// offset by the base port, its listener port) that stays the same across
// reloads for as long as the process lives, and across restarts (recover).
// A slot a reload frees is not
// given to another tenant until slotDrain has passed (a tenant of the same
// name that comes back gets it back at once). A reload that reorders, adds
// or removes tenants therefore never hands a live port, and the connections
// queued on it, to a different tenant.
type slotTable struct {
	byName map[string]uint32
	max    uint32 // highest slot the conntrack-mark mask can hold
	// freed holds the slots released by committed reloads that are still
	// draining: who held each and since when.
	freed map[uint32]freedSlot
	now   func() time.Time
}

type freedSlot struct {
	name string
	at   time.Time
}

func newSlotTable(max uint32) *slotTable {
	return &slotTable{byName: map[string]uint32{}, max: max, freed: map[uint32]freedSlot{}, now: time.Now}
}

// plan returns the slot of every tenant of cfg, keeping existing ones and
// giving new names the lowest slot that is free, not draining, and whose
// listener port (listener.port + slot - 1) exists and is not an intercept
// port. A tenant whose slot no longer has a valid port under cfg (a reload
// that raised listener.port or added an intercept port) is an error naming
// it. The table is unchanged until commit, so a reload that fails later
// leaves it as it was.
func (s *slotTable) plan(cfg *config.Config) (map[string]config.Slot, error) {
	names := tenantNames(cfg)
	now := s.now()
	out := make(map[string]config.Slot, len(names))
	used := map[uint32]bool{}
	for _, slot := range s.byName {
		used[slot] = true // leaving in this reload: draining from its commit on
	}
	for _, n := range names {
		slot, ok := s.byName[n]
		if !ok {
			slot, ok = s.drainingFor(n, now)
		}
		if ok {
			sl, err := cfg.Listener.SlotOf(slot)
			if err != nil {
				return nil, fmt.Errorf("tenant %q holds slot %d: %w; restart egressfw to renumber the slots", n, slot, err)
			}
			out[n] = sl
			used[slot] = true
		}
	}
	next := uint32(1)
	for _, n := range names {
		if _, ok := out[n]; ok {
			continue
		}
		var sl config.Slot
		for ; next <= s.max; next++ {
			var err error
			if sl, err = cfg.Listener.SlotOf(next); err == nil && !used[next] && !s.draining(next, now) {
				break
			}
		}
		if next > s.max {
			return nil, fmt.Errorf("no free tenant slot for %q: %d in use, %d draining (a freed slot is reused %s after its tenant left), listener ports from %d up to 65535",
				n, len(out), len(used)-len(out)+s.drainingCount(now), slotDrain, cfg.Listener.Port)
		}
		out[n] = sl
		used[next] = true
	}
	return out, nil
}

// drainingFor returns the draining slot last held by name, if any.
func (s *slotTable) drainingFor(name string, now time.Time) (uint32, bool) {
	for slot, f := range s.freed {
		if f.name == name && now.Sub(f.at) < slotDrain {
			return slot, true
		}
	}
	return 0, false
}

// drainingCount counts the slots freed less than slotDrain ago.
func (s *slotTable) drainingCount(now time.Time) int {
	n := 0
	for slot := range s.freed {
		if s.draining(slot, now) {
			n++
		}
	}
	return n
}

// draining reports whether slot was freed less than slotDrain ago.
func (s *slotTable) draining(slot uint32, now time.Time) bool {
	f, ok := s.freed[slot]
	return ok && now.Sub(f.at) < slotDrain
}

// commit makes a planned assignment current. Slots it releases start
// draining; drained ones are forgotten.
func (s *slotTable) commit(slots map[string]config.Slot) {
	now := s.now()
	for slot, f := range s.freed {
		if now.Sub(f.at) >= slotDrain || slots[f.name].ID == slot {
			delete(s.freed, slot)
		}
	}
	for name, slot := range s.byName {
		if slots[name].ID != slot {
			s.freed[slot] = freedSlot{name: name, at: now}
		}
	}
	s.byName = make(map[string]uint32, len(slots))
	for name, sl := range slots {
		s.byName[name] = sl.ID
	}
}

// recover seeds an unused table with the slots an earlier egressfw (or the
// boot guard) left in the kernel (nft.Manager.InstalledSlots), so that a
// restart keeps every tenant's slot as a reload does: a tenant keeps its
// port whatever the order of the new config, and the slots of tenants the
// new config no longer names drain (from the first commit) before another
// tenant gets them. Slots the conntrack mark cannot hold, or whose listener
// port cfg does not allow (a listener.port changed across the restart),
// are not kept: their tenants get new slots, and recover returns their
// names.
func (s *slotTable) recover(cfg *config.Config, installed map[string]uint32) (dropped []string) {
	for _, name := range slices.Sorted(maps.Keys(installed)) {
		slot := installed[name]
		if _, err := cfg.Listener.SlotOf(slot); err != nil || slot > s.max {
			dropped = append(dropped, name)
			continue
		}
		s.byName[name] = slot
	}
	return dropped
}

// tenantNames lists cfg's tenants by name, in config order.
func tenantNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Tenants))
	for i, t := range cfg.Tenants {
		names[i] = t.Name
	}
	return names
}

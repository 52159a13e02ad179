package proxy

import (
	"time"

	"github.com/egressfw/egressfw/internal/status"
)

// configureTrackers gives snap's tenants their status trackers: a tenant
// keeps its own (its counts) across reloads, a removed tenant's goes.
func (s *Proxy) configureTrackers(snap *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	trackers := make(map[string]*status.Tracker, len(snap.tenants))
	for _, t := range snap.tenants {
		tr := s.trackers[t.name]
		if tr == nil {
			tr = &status.Tracker{}
		}
		trackers[t.name], t.tracker = tr, tr
	}
	s.trackers = trackers
}

// note counts a connection in its tenant's tracker once, when it is
// decided: an allowed one when its relay starts, any other in finish. A
// denial without a name is counted by the address it was going to.
func (s *Proxy) note(r *connRecord) {
	if r.tracker == nil || r.noted {
		return
	}
	r.noted = true
	name := r.name
	if name == "" && r.orig.IsValid() {
		name = r.orig.Addr().String()
	}
	r.tracker.Note(time.Now(), r.verdict.Outcome(), r.verdict.Code.String(), name)
}

// Status is the data path's part of `egressfw status`: every tenant of
// the running config, in config order, with its open connections, its last
// minute and at most top of its most denied names; and the resolver
// cache's hits and misses since start.
func (s *Proxy) Status(now time.Time, top int) ([]status.Tenant, status.Cache) {
	cache := status.Cache{Hits: s.dnsStats.Hits.Load(), Misses: s.dnsStats.Misses.Load()}
	snap := s.state.Load()
	if snap == nil {
		return nil, cache
	}
	byName := make(map[string]*tenantState, len(snap.tenants))
	for _, t := range snap.tenants {
		byName[t.name] = t
	}
	out := make([]status.Tenant, 0, len(snap.cfg.Tenants))
	for _, ct := range snap.cfg.Tenants {
		t := byName[ct.Name]
		if t == nil {
			continue
		}
		st := status.Tenant{Name: t.name, Mode: ct.Mode, Slot: t.slot.ID, Port: t.slot.Port,
			Open: s.connPool.Count(t.share), TopDenied: []status.Name{}}
		if t.tracker != nil {
			st.LastMinute = t.tracker.LastMinute(now)
			st.TopDenied, st.TopSince = t.tracker.Top(now, top)
		}
		out = append(out, st)
	}
	return out, cache
}

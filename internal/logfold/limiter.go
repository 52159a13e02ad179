package logfold

import (
	"sync"
	"time"
)

// Limiter lets through the first burst of identical denials per
// window and counts the rest, so a tenant hammering a blocked address cannot
// flood the journal, yet no denial goes uncounted: when a key's window
// closes with suppressed lines, the next Allow reports how many.
//
// Keys are tracked per tenant, so one tenant's distinct denials (names it
// chooses, without limit) never fold or suppress another tenant's lines:
// each tenant holds at most maxDenialKeysPerTenant keys and, beyond them,
// one overflow window of its own. All tenants together hold at most
// maxDenialKeys keys; past that, a tenant's new keys go to its own overflow
// window too, so it still logs a burst per window.
type Limiter struct {
	burst  int
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex
	tenants   map[string]*tenantDenials
	total     int // keys held across tenants, overflow windows not counted
	lastSweep time.Time
}

// tenantDenials is one tenant's open windows.
type tenantDenials struct {
	keys     map[string]*denialWindow
	overflow *denialWindow // shared by this tenant's keys beyond the bounds
}

type denialWindow struct {
	start      time.Time
	seen       int
	suppressed int
}

// Bounds of the keys tracked at once: per tenant, and in all (about 400
// bytes a key: tenant, reason, name, destination).
const (
	maxDenialKeysPerTenant = 1024
	maxDenialKeys          = 16384
)

// New returns a Limiter that logs burst identical denials per window.
func New(burst int, window time.Duration) *Limiter {
	return &Limiter{burst: burst, window: window, now: time.Now, tenants: map[string]*tenantDenials{}}
}

// SetLimits changes the burst and window on reload; open windows keep
// counting.
func (l *Limiter) SetLimits(burst int, window time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.burst, l.window = burst, window
}

// Allow reports whether tenant's denial with this key should be logged.
// When it is, suppressed is the number of identical denials not logged
// since the last logged one (to be reported on this line).
func (l *Limiter) Allow(tenant, key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	td := l.tenants[tenant]
	if td == nil {
		// Tenant names come from the config (or "-"): bounded.
		td = &tenantDenials{keys: map[string]*denialWindow{}}
		l.tenants[tenant] = td
	}
	w := td.keys[key]
	if w == nil {
		if l.full(td) && now.Sub(l.lastSweep) >= l.window/8 {
			l.sweep(now)           // at most a few times per window: a sweep walks every key
			l.tenants[tenant] = td // the sweep may have dropped it, empty
		}
		if l.full(td) {
			// Keys hold tenant-chosen names: past the bounds, new ones
			// share the tenant's overflow window instead of growing the map.
			if td.overflow == nil {
				td.overflow = &denialWindow{start: now}
			}
			w = td.overflow
		} else {
			w = &denialWindow{start: now}
			td.keys[key] = w
			l.total++
		}
	}
	if now.Sub(w.start) >= l.window {
		suppressed = w.suppressed
		*w = denialWindow{start: now}
	}
	w.seen++
	if w.seen > l.burst {
		w.suppressed++
		return false, 0
	}
	return true, suppressed
}

// full reports whether td may not take another key.
func (l *Limiter) full(td *tenantDenials) bool {
	return len(td.keys) >= maxDenialKeysPerTenant || l.total >= maxDenialKeys
}

// sweep forgets closed windows, and tenants left with none, bounding
// memory. Suppressed counts of a forgotten key are not lost from metrics:
// the caller counts every suppression as it happens.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for name, td := range l.tenants {
		for k, w := range td.keys {
			if now.Sub(w.start) >= l.window {
				delete(td.keys, k)
				l.total--
			}
		}
		if td.overflow != nil && now.Sub(td.overflow.start) >= l.window {
			td.overflow = nil
		}
		if len(td.keys) == 0 && td.overflow == nil {
			delete(l.tenants, name)
		}
	}
}

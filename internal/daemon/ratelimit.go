package daemon

import (
	"sync"
	"time"
)

// denialLimiter lets through the first burst of identical denials per
// window and counts the rest, so a tenant hammering a blocked address cannot
// flood the journal, yet no denial goes uncounted: when a key's window
// closes with suppressed lines, the next Allow reports how many.
type denialLimiter struct {
	burst  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]*denialWindow
}

type denialWindow struct {
	start      time.Time
	seen       int
	suppressed int
}

// maxDenialKeys bounds the distinct denials tracked at once; overflowKey is
// the shared window of any beyond it.
const (
	maxDenialKeys = 4096
	overflowKey   = "\x00overflow"
)

func newDenialLimiter(burst int, window time.Duration) *denialLimiter {
	return &denialLimiter{burst: burst, window: window, now: time.Now, keys: map[string]*denialWindow{}}
}

// setLimits changes the burst and window on reload; open windows keep counting.
func (l *denialLimiter) setLimits(burst int, window time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.burst, l.window = burst, window
}

// Allow reports whether a denial with this key should be logged. When it is,
// suppressed is the number of identical denials not logged since the last
// logged one (to be reported on this line).
func (l *denialLimiter) Allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[key]
	if w == nil && len(l.keys) >= maxDenialKeys {
		l.sweep(now)
		if len(l.keys) >= maxDenialKeys {
			// Keys hold tenant-chosen names: past the bound, new ones share
			// one window instead of growing the map.
			key, w = overflowKey, l.keys[overflowKey]
		}
	}
	if w == nil {
		w = &denialWindow{start: now}
		l.keys[key] = w
	} else if now.Sub(w.start) >= l.window {
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

// sweep forgets closed windows, bounding memory. Suppressed counts of a
// forgotten key are not lost from metrics: the caller counts every
// suppression as it happens.
func (l *denialLimiter) sweep(now time.Time) {
	for k, w := range l.keys {
		if now.Sub(w.start) >= l.window {
			delete(l.keys, k)
		}
	}
}

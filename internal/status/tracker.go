package status

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Bounds of a Tracker (see the package doc for its memory).
const (
	// WindowSeconds is the span LastMinute counts, in one-second buckets.
	WindowSeconds = 60
	// TopCapacity is how many names one generation of the top-N holds.
	TopCapacity = 16
	// TopWindow is how long one generation of the top-N lasts: the names
	// shown are those of the last TopWindow to 2 × TopWindow.
	TopWindow = 10 * time.Minute
	// MaxNameLen is the longest name kept (a DNS name's limit); longer
	// ones are cut.
	MaxNameLen = 253
)

// Tracker is one tenant's recent connections: the counts of the last minute
// and the names most often denied. It is safe for concurrent use; each
// connection is noted once, when it is decided.
type Tracker struct {
	mu   sync.Mutex
	ring [WindowSeconds]bucket
	top  [2]generation // [0] current, [1] previous
}

// bucket counts one second. Counts of one second fit 32 bits.
type bucket struct {
	sec                             int64 // Unix second counted; another means empty
	conns, denied, reported, failed uint32
}

// generation is one TopWindow of the top-N (Space-Saving).
type generation struct {
	start time.Time // zero: not started
	names []Name    // at most TopCapacity
}

// Note counts one decided connection of outcome (policy.Decision.Outcome:
// allow, deny, would_deny, error) at now. A denial or would-be denial also
// counts name (the name asked for, or the address when there was none)
// with reason.
func (t *Tracker) Note(now time.Time, outcome, reason, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sec := now.Unix()
	b := &t.ring[uint64(sec)%WindowSeconds]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.conns++
	switch outcome {
	case "deny":
		b.denied++
	case "would_deny":
		b.reported++
	case "error":
		b.failed++
		return
	default:
		return
	}
	t.rotate(now)
	t.top[0].add(now, outcome, reason, name)
}

// LastMinute sums the buckets of the WindowSeconds seconds up to now.
func (t *Tracker) LastMinute(now time.Time) Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	sec := now.Unix()
	var c Counts
	for _, b := range t.ring {
		if b.sec > sec-WindowSeconds && b.sec <= sec {
			c.Connections += uint64(b.conns)
			c.Denied += uint64(b.denied)
			c.Reported += uint64(b.reported)
			c.Failed += uint64(b.failed)
		}
	}
	return c
}

// Top returns at most n of the names denied since the returned time, most
// first (ties: the latest first, then by name).
func (t *Tracker) Top(now time.Time, n int) ([]Name, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	since := t.top[0].start
	var out []Name
	for _, g := range t.top {
		if g.start.IsZero() {
			continue
		}
		since = g.start
		for _, e := range g.names {
			i := slices.IndexFunc(out, func(o Name) bool { return o.Name == e.Name })
			if i < 0 {
				out = append(out, e)
				continue
			}
			o := &out[i]
			o.Count, o.Overcount = o.Count+e.Count, o.Overcount+e.Overcount
			if e.Last.After(o.Last) {
				o.Decision, o.Reason, o.Last = e.Decision, e.Reason, e.Last
			}
		}
	}
	slices.SortFunc(out, func(a, b Name) int {
		switch {
		case a.Count != b.Count:
			return cmpDesc(a.Count, b.Count)
		case !a.Last.Equal(b.Last):
			return b.Last.Compare(a.Last)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out[:min(n, len(out))], since
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}

// rotate starts a new generation once the current one is TopWindow old;
// after 2 × TopWindow without one, both are dropped.
func (t *Tracker) rotate(now time.Time) {
	cur := &t.top[0]
	switch {
	case cur.start.IsZero():
		cur.start = now
	case now.Sub(cur.start) >= 2*TopWindow:
		t.top = [2]generation{{start: now}}
	case now.Sub(cur.start) >= TopWindow:
		t.top = [2]generation{{start: cur.start.Add(TopWindow)}, *cur}
	}
}

// add counts name in the generation. When it is full, the least counted
// name gives its place: the newcomer starts from that count (Space-Saving),
// which is its possible overcount.
func (g *generation) add(now time.Time, outcome, reason, name string) {
	if len(name) > MaxNameLen {
		name = name[:MaxNameLen]
	}
	if i := slices.IndexFunc(g.names, func(e Name) bool { return e.Name == name }); i >= 0 {
		e := &g.names[i]
		e.Count++
		e.Decision, e.Reason, e.Last = outcome, reason, now
		return
	}
	// A copy: the caller's string may share a larger buffer.
	e := Name{Name: strings.Clone(name), Count: 1, Decision: outcome, Reason: reason, Last: now}
	if len(g.names) < TopCapacity {
		if g.names == nil {
			g.names = make([]Name, 0, TopCapacity)
		}
		g.names = append(g.names, e)
		return
	}
	least := 0
	for i, o := range g.names {
		if o.Count < g.names[least].Count {
			least = i
		}
	}
	e.Count, e.Overcount = g.names[least].Count+1, g.names[least].Count
	g.names[least] = e
}

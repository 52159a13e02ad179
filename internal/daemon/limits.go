package daemon

import "sync/atomic"

// gate is a non-blocking counting semaphore: over the cap a connection is
// refused at once instead of queueing, so one tenant cannot starve others.
type gate struct {
	max atomic.Int64
	cur atomic.Int64
}

func newGate(max int) *gate {
	g := &gate{}
	g.max.Store(int64(max))
	return g
}

// enter takes a slot if one is free.
func (g *gate) enter() bool {
	if g.cur.Add(1) > g.max.Load() {
		g.cur.Add(-1)
		return false
	}
	return true
}

func (g *gate) leave() { g.cur.Add(-1) }

// setMax changes the cap on reload; connections above a lowered cap finish.
func (g *gate) setMax(n int) { g.max.Store(int64(n)) }

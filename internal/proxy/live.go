package proxy

import (
	"context"
	"log/slog"
	"net"
	"sync"

	"github.com/egressfw/egressfw/internal/policy"
)

// A reload applies to the connections already open too: each one that is
// relaying was judged by an earlier snapshot, and Install judges it again
// by the new one from what it was judged on when it opened (its name, the
// answer that name resolved to, the address it is connected to; nothing is
// resolved again). One the new config refuses is closed: its name was
// deny-listed, its tenant removed or switched from report to enforce, an
// address it covered is no longer covered. A plain-HTTP connection's
// later requests are judged one by one as well (h1conn.follow).

// liveConn is an open connection that is relaying, as a reload sees it.
type liveConn struct {
	c, up *net.TCPConn
	slot  uint32
	st    *Snapshot // the snapshot that judged it last
}

// liveSet holds the connections that are relaying, by their record.
type liveSet struct {
	mu sync.Mutex
	m  map[*connRecord]liveConn
}

// addLive registers a connection whose relay is about to start, judged by st.
// A reload that installed another snapshot meanwhile did not see it: it is
// judged here against the running one, and closed if refused.
func (s *Proxy) addLive(rec *connRecord, c, up *net.TCPConn, slot uint32, st *Snapshot) {
	s.live.mu.Lock()
	if s.live.m == nil {
		s.live.m = map[*connRecord]liveConn{}
	}
	s.live.m[rec] = liveConn{c: c, up: up, slot: slot, st: st}
	s.live.mu.Unlock()
	if cur := s.state.Load(); cur != nil && cur != st {
		s.recheck(cur)
	}
}

// removeLive forgets a connection whose relay ended.
func (s *Proxy) removeLive(rec *connRecord) {
	s.live.mu.Lock()
	delete(s.live.m, rec)
	s.live.mu.Unlock()
}

// recheck judges every relaying connection that an earlier snapshot than
// snap judged, and closes the ones snap's config refuses.
func (s *Proxy) recheck(snap *Snapshot) {
	type item struct {
		rec *connRecord
		lc  liveConn
	}
	var todo []item
	s.live.mu.Lock()
	for rec, lc := range s.live.m {
		if lc.st != snap {
			todo = append(todo, item{rec, lc})
			lc.st = snap
			s.live.m[rec] = lc
		}
	}
	s.live.mu.Unlock()
	closed := 0
	for _, it := range todo {
		t := snap.tenants[it.lc.slot]
		var ct *policy.CompiledTenant
		if t != nil && t.name == it.rec.tenant {
			ct = t.compiled
		}
		d := snap.policy.Recheck(ct, recheckRequest(it.rec))
		if d.Allow {
			continue
		}
		refused := d // only a refused decision goes to the heap
		it.rec.closedBy.Store(&refused)
		s.metrics.closed.WithLabelValues(it.rec.tenant, d.Code.String()).Inc()
		_ = it.lc.c.Close() // the relay ends and logs the connection
		_ = it.lc.up.Close()
		closed++
	}
	if closed > 0 {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "reload closed open connections its config refuses",
			slog.Int("closed", closed), slog.Int("rechecked", len(todo)))
	}
}

// recheckRequest is what a connection was judged on when it opened, with
// the address it is connected to as the one it must stay on.
func recheckRequest(rec *connRecord) policy.Request {
	v := &rec.verdict
	if v.Name != "" {
		return policy.Request{Name: v.Name, OrigDst: rec.dialed, Resolved: v.Answer.Addrs, Aliases: v.Answer.Aliases}
	}
	return policy.Request{Literal: rec.dialed.Addr(), OrigDst: rec.orig}
}

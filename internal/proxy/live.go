package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/egressfw/egressfw/internal/policy"
)

// A reload applies to the connections already open too: each one that is
// relaying was judged by an earlier snapshot, and Install judges it again
// by the new one on what it was judged on when it went through (its name or
// literal, the answer that name resolved to, the address it is connected
// to; nothing is resolved again; for plain HTTP every name its requests
// carried). One the new config refuses is reset: its name was deny-listed,
// its tenant removed or switched from report to enforce, an address it
// covered is no longer covered. A plain-HTTP connection's later requests
// are judged one by one by the running snapshot as well (h1conn.follow).

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
	lc := liveConn{c: c, up: up, slot: slot, st: st}
	cur := s.state.Load()
	if cur != nil && cur != st {
		lc.st = cur // judged below; a later Install finds it marked with cur and judges it again
	}
	s.live.m[rec] = lc
	s.live.mu.Unlock()
	if lc.st != st && s.closeIfRefused(cur, rec, lc) {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "reload closed open connections its config refuses",
			slog.Int("closed", 1), slog.Int("rechecked", 1))
	}
}

// removeLive forgets a connection whose relay ended.
func (s *Proxy) removeLive(rec *connRecord) {
	s.live.mu.Lock()
	delete(s.live.m, rec)
	s.live.mu.Unlock()
}

// recheck judges every relaying connection that an earlier snapshot than
// snap judged, and closes the ones snap's config refuses. Install calls it
// after making snap current; should a newer Install overtake it, it stops
// and leaves the rest to that one's recheck.
func (s *Proxy) recheck(snap *Snapshot) {
	type item struct {
		rec *connRecord
		lc  liveConn
	}
	var todo []item
	s.live.mu.Lock()
	for rec, lc := range s.live.m {
		if lc.st != snap {
			lc.st = snap
			s.live.m[rec] = lc
			todo = append(todo, item{rec, lc})
		}
	}
	s.live.mu.Unlock()
	closed, judged := 0, 0
	for _, it := range todo {
		if judged%256 == 0 && s.state.Load() != snap {
			break
		}
		judged++
		if s.closeIfRefused(snap, it.rec, it.lc) {
			closed++
		}
	}
	if closed > 0 {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "reload closed open connections its config refuses",
			slog.Int("closed", closed), slog.Int("rechecked", judged))
	}
}

// closeIfRefused judges rec again by snap and, if snap's config refuses
// it, resets both of its sockets. A plain-HTTP connection is judged on
// every name it was allowed to carry (its first request and the later
// ones it remembers), and closed if any is refused now: the requests in
// flight or upgraded to a WebSocket may be any of them.
func (s *Proxy) closeIfRefused(snap *Snapshot, rec *connRecord, lc liveConn) bool {
	var ct *policy.CompiledTenant
	if t := snap.tenantOf(lc.slot, rec.tenant); t != nil {
		ct = t.compiled
	}
	d := rejudge(snap.policy, ct, rec, rec.opened(), &rec.verdict)
	if later := rec.later.Load(); d.Allow && later != nil {
		for i := range *later {
			j := &(*later)[i]
			if d = rejudge(snap.policy, ct, rec, j.req, &j.d); !d.Allow {
				break
			}
		}
	}
	if d.Allow {
		return false
	}
	refused := d // only a refused decision goes to the heap
	rec.closedBy.Store(&refused)
	s.metrics.closed.WithLabelValues(rec.tenant, d.Code.String()).Inc()
	// A reset, as when a relay fails: a peer reading to EOF must not take
	// the cut for a complete response.
	for _, c := range []*net.TCPConn{lc.c, lc.up} {
		_ = c.SetLinger(0)
		_ = c.Close() // the relay ends and logs the connection
	}
	return true
}

// rejudge is the decision of t (nil: the tenant is gone) on a request a
// connection carries, which was judged d when it went through: req again,
// on the answer d judged (nothing is resolved) and the address the
// connection is connected to. A refusal the data path made itself, which
// report mode let through (CONNECT, h2c, a Host port not the
// connection's), is made again, now in t's mode.
func rejudge(pol *policy.Policy, t *policy.CompiledTenant, rec *connRecord, req policy.Request, d *policy.Decision) policy.Decision {
	switch d.Code {
	case policy.CodeConnectMethod, policy.CodeH2Preface, policy.CodePortMismatch:
		if t != nil {
			return policy.Deny(t, rec.orig, d.Code, d.Detail)
		}
	}
	if req.Name == "" {
		return pol.Recheck(t, req)
	}
	req.OrigDst, req.Resolved, req.Aliases = rec.dialed, d.Answer.Addrs, d.Answer.Aliases
	v := pol.Recheck(t, req)
	if v.Code == policy.CodeNoAddresses && len(d.Answer.Addrs) == 0 {
		// Report mode let it through before its name was resolved (the
		// name rules refused it, or DNS failed): it went to an address
		// nothing validated.
		return policy.Deny(t, rec.orig, policy.CodeNotOnConnection, fmt.Sprintf(
			"report mode let %q through unresolved, to %s, which no answer validated", req.Name, rec.dialed))
	}
	return v
}

// judgedRequest is a later request of a plain-HTTP connection that went
// through: what was judged and the decision.
type judgedRequest struct {
	req policy.Request
	d   policy.Decision
}

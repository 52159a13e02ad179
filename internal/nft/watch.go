package nft

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/egressfw/egressfw/internal/nft/route"

	"github.com/egressfw/egressfw/internal/nft/batch"
	"github.com/egressfw/egressfw/internal/nft/events"
	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Restoring. The table lives in the kernel, where any root process can
// remove it: `nft flush ruleset`, `nft -f` of a file that starts with
// `flush ruleset` (Debian's /etc/nftables.conf, so `systemctl reload
// nftables`), `nft delete table`, a flushed chain, a deleted map element;
// `ip rule flush` or a network manager that removes rules it does not know
// takes the policy routing. Watch follows the kernel's change
// notifications (package events) and, after a change egressfw did not make
// to its table or to the rules and routes of its route table, puts back what
// the last Apply installed: the table through the same one-batch
// replacement as Apply (all chains rewritten, see keep.go), the routing
// through route.Install.
//
// Own changes are told apart exactly: every notification carries the
// netlink port id of the socket whose transaction made it, and all of
// egressfw's transactions go through the batcher's socket. A change is
// acted on once its transaction is complete (NFT_MSG_NEWGEN, which also
// names the process that committed it). Changes that arrive while a restore
// runs are coalesced into the next one. When notifications are lost (the
// socket's receive buffer overflowed), the ruleset generation says whether
// anyone else committed anything since egressfw's last transaction, and if
// so the table is rewritten.
//
// Against a program that keeps changing the table, every change is
// answered: restores are not rate limited (they run one at a time, and the
// changes that arrive meanwhile are coalesced into the next), since a
// restore held back is a moment the tenants are not filtered. Their
// reports are: reportRate.burst within reportRate.window one by one, then
// one per reportRate.gap summing up the restores since (Restore.Count), so
// the log stays bounded. A restore that fails (the kernel refuses the
// batch) is retried with a backoff from retryMin to retryMax for as long as
// the watch runs; every attempt is reported, so the caller can mark itself
// unhealthy until one succeeds.

// Restore reports one repair of the ruleset or of the policy routing after
// changes egressfw did not make, or a failed attempt at it.
type Restore struct {
	What      string        // the changes seen, e.g. "delete table (egressfw)"
	By        string        // processes that committed them, e.g. "nft[1234]" (the committing thread's id); "" if not known
	Took      time.Duration // from reading the first change to the end of the repair (the longest, when Count > 1)
	Count     int           // the repairs this report stands for: 1, or more when Throttled
	Throttled bool          // the changes keep coming: this report sums up the repairs since the last one
	Attempt   int           // 1, or the number of the retry after failures
	Err       error         // nil when repaired; else it is retried with backoff
}

// reportRate bounds the reports of successful restores: burst within
// window one by one, then one per gap summing up the restores since.
var reportRate = struct {
	burst       int
	window, gap time.Duration
}{burst: 5, window: 10 * time.Second, gap: time.Second}

// summaryProcs bounds the processes a summing report names.
const summaryProcs = 4

// Retry backoff of failed restores.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 5 * time.Second
)

// watched is what the watch compares notifications against: the table and
// route table of the last successful Apply.
type watched struct {
	table      string
	routeTable uint32
	bridge     bool // the bridge table of the same name is egressfw's too
}

// changes accumulates what the readers saw until the restorer takes it.
type changes struct {
	since    time.Time // when the first of them was read
	log      events.Log
	table    bool            // egressfw's table was changed
	chains   map[string]bool // the chains of it whose rules or definition were changed
	routing  bool            // a rule or route of egressfw's route table was removed
	overflow bool            // notifications were lost
}

func (c *changes) merge(o *changes) {
	if c.since.IsZero() || !o.since.IsZero() && o.since.Before(c.since) {
		c.since = o.since
	}
	c.log.Merge(&o.log)
	c.table, c.routing, c.overflow = c.table || o.table, c.routing || o.routing, c.overflow || o.overflow
	c.touch(o.chains)
}

// touch records changed chains.
func (c *changes) touch(chains map[string]bool) {
	if len(chains) > 0 && c.chains == nil {
		c.chains = map[string]bool{}
	}
	maps.Copy(c.chains, chains)
}

type watcher struct {
	m      *Manager
	report func(Restore)
	kick   chan struct{}

	mu      sync.Mutex
	pending changes
}

// Watch keeps the table and policy routing of the last Apply in place until
// ctx ends or the Manager is closed, and calls report (on its own
// goroutine) after every restore or failed attempt. It returns once the
// notification groups are joined; a Manager has one watch at most.
func (m *Manager) Watch(ctx context.Context, report func(Restore)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watching {
		return errors.New("watch ruleset: already watching")
	}
	if err := m.mon.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("watch ruleset: join nftables notifications: %w", err)
	}
	for _, g := range []uint32{unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE} {
		if err := m.rtmon.JoinGroup(g); err != nil && !(g >= unix.RTNLGRP_IPV6_ROUTE && route.SkipFamily(err)) {
			return fmt.Errorf("watch ruleset: join rtnetlink group %d: %w", g, err)
		}
	}
	m.watching = true
	if !m.b.Unchanged() {
		m.texts = nil // changed before the watch could see it
	}
	if m.spec != nil {
		m.prepareSpare(m.spec)
	}
	w := &watcher{m: m, report: report, kick: make(chan struct{}, 1)}
	m.b.SetMonitor(m.mon, func() { w.note(func(c *changes) { c.overflow = true }) })
	context.AfterFunc(ctx, func() {
		now := time.Now()
		_ = m.mon.SetReadDeadline(now)
		_ = m.rtmon.SetReadDeadline(now)
	})
	go w.read(ctx, m.mon, w.nftMessages())
	go w.read(ctx, m.rtmon, w.routeMessages)
	go w.run(ctx)
	return nil
}

// dialMonitors opens the sockets Watch reads change notifications from.
// They join no group until Watch, so an unwatched Manager receives nothing.
func dialMonitors(netnsFd int) (mon, rtmon *mdnetlink.Conn, err error) {
	cfg := &mdnetlink.Config{}
	if netnsFd >= 0 {
		cfg.NetNS = netnsFd
	}
	if mon, err = mdnetlink.Dial(unix.NETLINK_NETFILTER, cfg); err != nil {
		return nil, nil, fmt.Errorf("open nftables notification socket: %w", err)
	}
	if rtmon, err = mdnetlink.Dial(unix.NETLINK_ROUTE, cfg); err != nil {
		mon.Close()
		return nil, nil, fmt.Errorf("open rtnetlink notification socket: %w", err)
	}
	// A table of 1,000 tenants is ~20,000 notifications: room for them
	// (the memory is only used while they wait to be read).
	for _, c := range []*mdnetlink.Conn{mon, rtmon} {
		if err = batch.BigBuffers(c); err != nil {
			mon.Close()
			rtmon.Close()
			return nil, nil, err
		}
	}
	return mon, rtmon, nil
}

// closeSockets closes whatever New opened.
func (m *Manager) closeSockets() {
	m.closed.Store(true)
	m.nl.Close()
	for _, c := range []*mdnetlink.Conn{m.mon, m.rtmon} {
		if c != nil {
			c.Close()
		}
	}
	if m.b != nil {
		_ = m.b.Close()
	}
}

// note records changes and wakes the restorer.
func (w *watcher) note(f func(*changes)) {
	w.mu.Lock()
	if w.pending.since.IsZero() {
		w.pending.since = time.Now()
	}
	f(&w.pending)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// take returns and clears what was noted.
func (w *watcher) take() changes {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.pending
	w.pending = changes{}
	return c
}

// read hands every batch of messages from sock to handle until ctx ends or
// the socket is closed. Lost notifications are noted as an overflow.
func (w *watcher) read(ctx context.Context, sock *mdnetlink.Conn, handle func([]mdnetlink.Message)) {
	for {
		msgs, err := sock.Receive()
		if err != nil {
			if ctx.Err() != nil || w.m.closed.Load() {
				return
			}
			// ENOBUFS: the receive buffer overflowed; anything else is
			// unexpected, and what it cost is not known either.
			w.note(func(c *changes) { c.overflow = true })
			if !errors.Is(err, unix.ENOBUFS) {
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		handle(msgs)
	}
}

// nftMessages returns the handler of nftables notifications: it collects
// the changes each foreign transaction made to the watched table and notes
// them when the transaction completes.
func (w *watcher) nftMessages() func([]mdnetlink.Message) {
	var txn events.Log
	touched := false
	var chains map[string]bool
	return func(msgs []mdnetlink.Message) {
		own := w.m.b.Port()
		wt := w.m.watched.Load()
		for _, msg := range msgs {
			if msg.Header.PID == own && own != 0 {
				continue
			}
			ev, ok := events.ParseNft(uint16(msg.Header.Type), msg.Data)
			switch {
			case !ok:
			case ev.Gen && touched:
				txn.AddProc(ev.Proc, ev.PID)
				done, changed := txn, chains
				w.note(func(c *changes) { c.table = true; c.log.Merge(&done); c.touch(changed) })
				txn, touched, chains = events.Log{}, false, nil
			case !ev.Gen && wt != nil && (ev.Inet || ev.Bridge && wt.bridge) && ev.Table == wt.table:
				if ev.Bridge { // named apart from the inet table's objects (rewritten whole anyway)
					ev.Name = "bridge " + cmp.Or(ev.Name, ev.Table)
				}
				txn.Add(ev)
				touched = true
				if strings.HasSuffix(ev.Change, " rule") || strings.HasSuffix(ev.Change, " chain") {
					if chains == nil {
						chains = map[string]bool{}
					}
					chains[ev.Name] = true
				}
			}
		}
	}
}

// routeMessages notes the removal of any rule or route of the watched route
// table; the restorer checks what is missing.
func (w *watcher) routeMessages(msgs []mdnetlink.Message) {
	wt := w.m.watched.Load()
	if wt == nil {
		return
	}
	for _, msg := range msgs {
		ev, ok := events.ParseRoute(uint16(msg.Header.Type), msg.Data)
		if ok && ev.Table == wt.routeTable {
			w.note(func(c *changes) { c.routing = true })
		}
	}
}

// run restores after each kick and retries failed restores with backoff,
// until ctx ends; reports go through a reporter, which bounds them.
func (w *watcher) run(ctx context.Context) {
	rep := &reporter{report: w.report}
	var failed *changes // what the last failed attempt was about
	attempt, backoff := 0, retryMin
	retry, flush := stoppedTimer(), stoppedTimer()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			rep.flush(time.Now())
			continue
		case <-w.kick:
		case <-retry.C:
		}
		c := w.take()
		if failed != nil {
			c.merge(failed)
		}
		r, acted := w.restore(&c)
		if !acted {
			continue
		}
		attempt++
		r.Attempt, r.Count = attempt, 1
		if r.Err != nil {
			w.report(r)
			failed = &c
			retry.Reset(backoff)
			backoff = min(2*backoff, retryMax)
			continue
		}
		failed, attempt, backoff = nil, 0, retryMin
		if wait := rep.add(r, time.Now()); wait > 0 {
			flush.Reset(wait)
		}
	}
}

// stoppedTimer is a timer that has not been started.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// reporter passes on reportRate.burst reports of successful restores per
// reportRate.window and sums up the rest, one report per reportRate.gap.
type reporter struct {
	report  func(Restore)
	sent    []time.Time // reports within the window
	pending *Restore    // restores not reported yet, summed up
}

// add reports r, or adds it to the pending summary; it returns how long
// until that summary is due (0: none is pending, or it is due already at
// an earlier return).
func (p *reporter) add(r Restore, now time.Time) time.Duration {
	cut := now.Add(-reportRate.window)
	for len(p.sent) > 0 && p.sent[0].Before(cut) {
		p.sent = p.sent[1:]
	}
	if p.pending == nil && len(p.sent) < reportRate.burst {
		p.send(r, now)
		return 0
	}
	if p.pending != nil {
		p.pending.Count++
		p.pending.Took = max(p.pending.Took, r.Took)
		p.pending.What = r.What // the latest; a loop repeats one change
		p.pending.By = joinProcs(p.pending.By, r.By)
		return 0
	}
	r.Throttled = true
	p.pending = &r
	return max(time.Until(p.sent[len(p.sent)-1].Add(reportRate.gap)), time.Millisecond)
}

// flush reports the pending summary, if any.
func (p *reporter) flush(now time.Time) {
	if p.pending != nil {
		r := *p.pending
		p.pending = nil
		p.send(r, now)
	}
}

func (p *reporter) send(r Restore, now time.Time) {
	p.sent = append(p.sent, now)
	p.report(r)
}

// joinProcs adds the processes of b to the list a, at most summaryProcs.
func joinProcs(a, b string) string {
	procs := strings.Split(a, ", ")
	if a == "" {
		procs = nil
	}
	for _, p := range strings.Split(b, ", ") {
		if p != "" && !slices.Contains(procs, p) && len(procs) < summaryProcs {
			procs = append(procs, p)
		}
	}
	return strings.Join(procs, ", ")
}

// restore repairs what c says was changed. acted is false when there was
// nothing to repair (nothing applied yet, or a lost notification that
// turned out to be someone else's business).
func (w *watcher) restore(c *changes) (r Restore, acted bool) {
	m := w.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.spec == nil || m.routing == nil {
		return r, false
	}
	var what []string
	if !c.log.Empty() {
		what = append(what, c.log.String())
	}
	r.By = strings.Join(c.log.Procs(), ", ")
	missing, err := route.Missing(m.nl, *m.routing)
	if len(missing) > 0 {
		what = append(what, "removed routing: "+strings.Join(missing, ", "))
	}
	rewrite := c.table || c.overflow && !m.b.Unchanged()
	if c.overflow && rewrite {
		what = append(what, "change notifications missed (lost, or sent while egressfw committed), another transaction since egressfw's last")
	}
	switch {
	case err != nil:
	case rewrite:
		var done bool
		if done, err = m.restoreFromSpare(); !done {
			m.vouch(c)
			err = m.applyLocked(m.spec, m.ids, nil)
		}
	case len(missing) > 0:
		err = route.Install(m.nl, *m.routing)
	default:
		return r, false
	}
	r.What, r.Took, r.Err = strings.Join(what, "; "), time.Since(c.since), err
	return r, true
}

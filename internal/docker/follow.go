package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Follower.
type Config struct {
	Socket string // the Engine API's unix socket, e.g. /run/docker.sock
	Ports  Ports  // finds bridge ports (NewHostPorts)
	// Reconcile is how often the running containers are listed and read
	// again, to catch events the stream did not deliver (default 30s).
	Reconcile time.Duration
	Log       *slog.Logger // default slog.Default()
}

// Defaults and bounds of a Follower.
const (
	DefaultReconcile = 30 * time.Second
	backoffMin       = 100 * time.Millisecond
	backoffMax       = 5 * time.Second
	requestTimeout   = 30 * time.Second // an inspect waits while the engine starts the container
	inspectors       = 8                // containers read at once
	// emitWait bounds how long a change waits for the other reads in
	// flight before it is reported (a snapshot is consistent when none
	// is in flight).
	emitWait = 250 * time.Millisecond
)

// Follower follows the containers of one engine.
type Follower struct {
	cfg Config
	c   *client
}

// New returns a Follower of the engine at cfg.Socket.
func New(cfg Config) (*Follower, error) {
	switch {
	case cfg.Socket == "":
		return nil, errors.New("docker: no socket")
	case cfg.Ports == nil:
		return nil, errors.New("docker: no port finder")
	}
	if cfg.Reconcile <= 0 {
		cfg.Reconcile = DefaultReconcile
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Follower{cfg: cfg, c: newClient(cfg.Socket)}, nil
}

// Run follows the engine until ctx ends and returns ctx's error. It calls
// update, from its own goroutine and one call at a time, with a snapshot
// after every change: a container started, stopped, renamed, attached to
// or detached from a network, a bridge port deleted, the engine lost or
// found again. While the engine cannot be read (not started yet, stopped,
// restarting) the last snapshot's containers stay, Live false, each
// losing an endpoint as soon as its bridge port is deleted, and the
// follower reconnects with a backoff of up to 5s; on reconnecting it
// reads every container again.
func (f *Follower) Run(ctx context.Context, update func(Snapshot)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := newLoop(f, update)
	if err := f.cfg.Ports.Gone(ctx, func(ix int) {
		select {
		case l.gone <- ix:
		case <-ctx.Done():
		}
	}); err != nil {
		f.cfg.Log.Warn("docker: deleted bridge ports are noticed only from the engine's events", "error", err)
	}
	backoff, told := backoffMin, false
	for {
		start := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case l.live:
			l.live, told = false, true
			l.note()
			f.cfg.Log.Warn("docker: engine API lost; keeping the containers known so far", "socket", f.cfg.Socket, "error", err)
		case !told: // once until it works
			told = true
			f.cfg.Log.Warn("docker: cannot read the engine API; retrying", "socket", f.cfg.Socket, "error", err)
		}
		if time.Since(start) > time.Minute {
			backoff = backoffMin
		}
		l.idle(ctx, backoff)
		backoff = min(2*backoff, backoffMax)
	}
}

// entry is what the loop knows of a container id: the container (nil:
// not running) as of sequence number seq.
type entry struct {
	seq uint64
	c   *Container
}

// result is one read of a container, begun at sequence number seq.
type result struct {
	id  string
	seq uint64
	c   *Container
	err error
}

// loop is the follower's state, owned by Run's goroutine. Reads of
// containers run on goroutines of their own (an inspect can wait for the
// engine to finish starting the container); each is numbered when it
// begins, and a result older than what is known of the container is
// dropped, so a slow read never undoes a later one.
type loop struct {
	f        *Follower
	update   func(Snapshot)
	seq      uint64
	known    map[string]entry
	live     bool
	engine   string
	inflight map[string]bool // a read of the id is running
	dirty    map[string]bool // and another was asked for meanwhile
	results  chan result
	gone     chan int
	sem      chan struct{}
	changed  bool
	since    time.Time // first change not yet reported
}

func newLoop(f *Follower, update func(Snapshot)) *loop {
	return &loop{f: f, update: update, known: map[string]entry{}, inflight: map[string]bool{}, dirty: map[string]bool{},
		results: make(chan result, inspectors), gone: make(chan int, 64), sem: make(chan struct{}, inspectors)}
}

// session reads the engine from a new event stream until it fails.
func (l *loop) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := l.f.c.events(sctx) // before the list: nothing falls between
	if err != nil {
		return err
	}
	defer stream.Close()
	evs, errc := make(chan event, 256), make(chan error, 1)
	go func() {
		for {
			e, err := stream.next()
			if err != nil {
				errc <- err
				return
			}
			select {
			case evs <- e:
			case <-sctx.Done():
				return
			}
		}
	}()
	rctx, rcancel := context.WithTimeout(sctx, requestTimeout)
	engine, err := l.f.c.engine(rctx)
	rcancel()
	if err != nil {
		return err
	}
	if err := l.rebuild(ctx); err != nil {
		return err
	}
	l.f.cfg.Log.Info("docker: following the engine API", "socket", l.f.cfg.Socket, "engine", engine)
	l.live, l.engine = true, engine
	l.note()
	tick := time.NewTicker(l.f.cfg.Reconcile)
	defer tick.Stop()
	for {
		l.maybeEmit()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("event stream: %w", err)
		case e := <-evs:
			l.handle(ctx, e)
		case <-tick.C:
			if err := l.rebuild(ctx); err != nil {
				return err
			}
		case r := <-l.results:
			l.apply(ctx, r)
		case ix := <-l.gone:
			l.portGone(ix)
		case <-l.emitTimer():
		}
	}
}

// idle waits d while the engine cannot be read, still taking reads that
// finish and ports that are deleted.
func (l *loop) idle(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		l.maybeEmit()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case r := <-l.results:
			l.apply(ctx, r)
		case ix := <-l.gone:
			l.portGone(ix)
		case <-l.emitTimer():
		}
	}
}

// rebuild lists the running containers: those no longer listed are gone,
// and every listed one is read again.
func (l *loop) rebuild(ctx context.Context) error {
	at := l.next()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	ids, err := l.f.c.list(rctx)
	cancel()
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, c := range ids {
		listed[c.ID] = true
	}
	for id, e := range l.known {
		switch {
		case listed[id] || e.seq > at:
		case e.c != nil:
			l.set(id, entry{seq: at})
		case !l.inflight[id]:
			delete(l.known, id) // a tombstone no read can contradict any more
		}
	}
	for id := range listed {
		l.read(ctx, id)
	}
	return nil
}

// handle starts a read of the container an event is about.
func (l *loop) handle(ctx context.Context, e event) {
	l.f.cfg.Log.Debug("docker: event", "type", e.Type, "action", e.Action, "id", e.Actor.ID)
	switch e.Type {
	case "container":
		switch e.Action {
		case "start", "restart", "unpause", "die", "died", "stop", "destroy", "remove", "rename", "update":
			l.read(ctx, e.Actor.ID)
		}
	case "network":
		if e.Action != "connect" && e.Action != "disconnect" {
			return
		}
		if id := e.Actor.Attributes["container"]; id != "" {
			l.read(ctx, id)
			return
		}
		if err := l.rebuild(ctx); err != nil { // no container named: read them all
			l.f.cfg.Log.Warn("docker: list containers", "error", err)
		}
	}
}

// read starts a read of container id, or asks for one more after the
// read in flight.
func (l *loop) read(ctx context.Context, id string) {
	if id == "" {
		return
	}
	if l.inflight[id] {
		l.dirty[id] = true
		return
	}
	l.inflight[id] = true
	seq := l.next()
	go func() {
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c, err := l.f.read(ctx, id)
		<-l.sem
		select {
		case l.results <- result{id: id, seq: seq, c: c, err: err}:
		case <-ctx.Done():
		}
	}()
}

// apply records a read, unless something newer is known.
func (l *loop) apply(ctx context.Context, r result) {
	delete(l.inflight, r.id)
	if l.dirty[r.id] {
		delete(l.dirty, r.id)
		l.read(ctx, r.id)
	}
	if r.err != nil {
		l.f.cfg.Log.Warn("docker: read container", "id", r.id, "error", r.err)
		return // the next event or reconcile reads it again
	}
	if r.seq < l.known[r.id].seq {
		return
	}
	l.set(r.id, entry{seq: r.seq, c: r.c})
}

// set records e for id and notes a change if the container changed.
func (l *loop) set(id string, e entry) {
	if !sameContainer(l.known[id].c, e.c) {
		l.note()
	}
	l.known[id] = e
}

// portGone forgets every endpoint on a deleted port.
func (l *loop) portGone(ix int) {
	for id, e := range l.known {
		if e.c == nil {
			continue
		}
		for i, ep := range e.c.Endpoints {
			if ep.Port == ix {
				c := e.c.clone()
				c.Endpoints[i].Port, c.Endpoints[i].Bridge = 0, 0
				l.known[id] = entry{seq: e.seq, c: &c}
				l.note()
			}
		}
	}
}

func (l *loop) next() uint64 { l.seq++; return l.seq }

func (l *loop) note() {
	if !l.changed {
		l.changed, l.since = true, time.Now()
	}
}

// emitTimer fires when a change waiting for reads in flight is due.
func (l *loop) emitTimer() <-chan time.Time {
	if !l.changed || len(l.inflight) == 0 {
		return nil
	}
	return time.After(time.Until(l.since.Add(emitWait)))
}

// maybeEmit reports the snapshot if something changed and no read is in
// flight, or the change has waited long enough.
func (l *loop) maybeEmit() {
	if !l.changed || len(l.inflight) > 0 && time.Since(l.since) < emitWait {
		return
	}
	s := Snapshot{Containers: map[string]Container{}, Live: l.live, Pending: len(l.inflight), Engine: l.engine}
	for id, e := range l.known {
		if e.c != nil {
			s.Containers[id] = e.c.clone()
		}
	}
	l.changed = false
	l.update(s)
}

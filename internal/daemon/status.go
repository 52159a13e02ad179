package daemon

import (
	"sync/atomic"
	"time"

	"github.com/egressfw/egressfw/internal/status"
)

// statusTop is how many denied names per tenant the status report lists.
const statusTop = 10

// statusState is what the daemon keeps for `egressfw status` besides the
// data path's counts: when it started, and the last rules application and
// reload.
type statusState struct {
	started    time.Time
	lastApply  atomic.Pointer[status.Event]
	lastReload atomic.Pointer[status.Event]
}

// event is an Event at now that failed with err, or succeeded (nil).
func event(err error) *status.Event {
	e := &status.Event{Time: time.Now()}
	if err != nil {
		e.Error = err.Error()
	}
	return e
}

// serveStatus answers `egressfw status` on the unix socket at path until
// the returned stop is called.
func (d *Daemon) serveStatus(path string) (stop func(), err error) {
	ln, err := status.Listen(path)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		status.Serve(ln, d.report, d.log)
	}()
	return func() { ln.Close(); <-done }, nil
}

// report is the running state for `egressfw status` (any goroutine).
func (d *Daemon) report() status.Report {
	now := time.Now()
	r := status.Report{Version: d.opts.Version, Config: d.opts.ConfigPath, Started: d.st.started, Now: now, Health: "ok",
		Reload: status.Reload{Count: d.reloads.Load(), Last: d.st.lastReload.Load()}}
	r.Tenants, r.DNSCache = d.proxy.Status(now, statusTop)
	r.Ruleset.LastApply = d.st.lastApply.Load()
	if d.fw == nil { // in-process tests run without the kernel's firewall
		return r
	}
	if err := d.health(); err != nil {
		r.Health = err.Error()
	}
	if err := d.fw.health(); err != nil {
		r.Ruleset.Problem = err.Error()
	}
	r.Ruleset.Restores, r.Ruleset.Failures = d.fw.restores.Load(), d.fw.restoreFailures.Load()
	r.Ruleset.LastRestore = d.fw.lastRestore.Load()
	return r
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/proxy"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// Notifier reports the service state to the supervisor (sd_notify under
// systemd; a no-op otherwise). A status may span lines (an error naming
// every problem of a config): the notifier shows it as one line.
type Notifier interface {
	Ready(status string)
	Reloading()
	Stopping()
	Status(status string)
	// Watchdog pings while health returns nil and reports its error
	// otherwise.
	Watchdog(ctx context.Context, health func() error)
}

// Options configure Run.
type Options struct {
	ConfigPath string
	Version    string
	Log        *slog.Logger
	Notifier   Notifier
	// Reload delivers a signal (SIGHUP) to re-read the config.
	Reload <-chan struct{}
}

// Daemon is a running egressfw.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	proxy   *proxy.Proxy
	fw      *firewall
	rules   ruleset // fw; tests give a fake
	slots   *slotTable
	metrics *metrics
	// gen is what the rules in force were built from (nil before the
	// first apply); other goroutines than the main loop read it.
	gen     atomic.Pointer[generation]
	reloads atomic.Int64
	// subUIDsLost: the sub-uid files are no longer watched (unhealthy).
	subUIDsLost atomic.Bool
	// st is what egressfw status reports besides the data path's counts.
	st statusState
}

// generation is what one ruleset is built from: the config, each tenant's
// slot, and the tenants' uid ranges (uid_ranges and followed sub-uids).
type generation struct {
	cfg   *config.Config
	slots map[string]config.Slot
	uids  uidRanges
}

// ruleset installs the kernel rules of a generation once ready (see
// firewall.apply).
type ruleset interface {
	apply(ctx context.Context, gen *generation, ready func() error) error
}

// Run applies the rules, opens the listeners, serves until ctx ends, then
// drains live connections for listener.shutdown_grace and returns nil. The
// kernel rules stay after Run returns (fail closed) unless
// firewall.keep_rules_on_stop is false.
func Run(ctx context.Context, opts Options) error {
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	d := &Daemon{opts: opts, log: opts.Log, metrics: newMetrics(opts.Version), st: statusState{started: time.Now()}}
	d.slots = newSlotTable(slotCapacity(cfg))
	d.proxy = proxy.New(proxy.Options{Log: d.log, Metrics: d.metrics.reg, Mark: cfg.Firewall.BypassMark,
		Dialer: &tproxy.Dialer{Mark: cfg.Firewall.BypassMark, Timeout: cfg.Listener.ConnectTimeout.Duration}})
	if d.fw, err = newFirewall(d.log, d.metrics); err != nil {
		return err
	}
	d.rules = d.fw
	if err := watchHostAddrs(ctx, ownNamespace(), d.proxy.SetHostAddrs, func(err error) {
		d.log.Error("host address watch", "err", err)
	}); err != nil {
		return err
	}
	// Watching before the first apply: nothing changed in between is missed.
	if err := d.fw.guardRuleset(ctx, d.rulesetChanged); err != nil {
		return err
	}
	subUIDs, err := followSubUIDs(ctx, cfg)
	if err != nil {
		return err
	}
	if err := d.recoverSlots(cfg); err != nil {
		return err
	}
	if cfg.Docker.Socket != "" {
		if err := d.fw.followDocker(ctx, cfg.Docker, d.proxy.SetContainers, d.dockerLive); err != nil {
			return err
		}
	}
	if err := d.apply(ctx, cfg); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if cfg.Metrics.Listen != "" {
		if err := d.metrics.serve(ctx, cfg.Metrics.Listen, d.log); err != nil {
			return fmt.Errorf("metrics listener %s: %w", cfg.Metrics.Listen, err)
		}
	}
	if cfg.Metrics.StatusSocket != "" {
		stop, err := d.serveStatus(cfg.Metrics.StatusSocket)
		if err != nil {
			return err
		}
		defer stop()
	}
	d.opts.Notifier.Ready(d.status())
	d.log.Info("egressfw started", "version", opts.Version, "config", opts.ConfigPath,
		"tenants", len(cfg.Tenants), "listener_ports", d.portRange())
	go d.opts.Notifier.Watchdog(ctx, d.health)
	for {
		select {
		case <-ctx.Done():
			return d.shutdown()
		case <-opts.Reload:
			d.reload(ctx)
		case _, ok := <-subUIDs:
			if !ok {
				subUIDs = nil
				if ctx.Err() == nil {
					d.subUIDsLost.Store(true) // the watchdog stops: systemd restarts egressfw
					d.log.Error("lost the watch on the sub-uid files; changes to them are not followed")
				}
				continue
			}
			d.refreshUIDs(ctx)
		}
	}
}

// recoverSlots takes the tenants' slots from the table an earlier egressfw
// or the boot guard left in the kernel (see slotTable.recover).
func (d *Daemon) recoverSlots(cfg *config.Config) error {
	installed, err := d.fw.mgr.InstalledSlots(cfg.Firewall.Table)
	if err != nil {
		return fmt.Errorf("read the tenant slots of the installed table: %w", err)
	}
	dropped := d.slots.recover(cfg, installed)
	if len(dropped) > 0 {
		d.log.Warn("tenant slots of the installed table not kept: no listener port for them under this config; renumbered", "tenants", dropped)
	}
	if len(installed) > 0 {
		d.log.Info("tenant slots taken from the installed table", "slots", len(installed)-len(dropped))
	}
	return nil
}

// slotCapacity is the highest slot the conntrack mark can hold (and a
// port can follow). Which slots have a listener port is checked per config
// by slotTable.plan: listener.port may change on reload.
func slotCapacity(cfg *config.Config) uint32 {
	return uint32(min(config.MaxSlots(cfg.Firewall.CtMarkMask), 65535))
}

// apply makes cfg current: slots, snapshot, listeners for new tenants
// before the rules that send traffic to them, then the rules, then the
// snapshot swap, then listeners of removed tenants are closed. Any failure
// before the rules are applied leaves the running state untouched.
func (d *Daemon) apply(ctx context.Context, cfg *config.Config) error {
	slots, err := d.slots.plan(cfg)
	if err != nil {
		return err
	}
	if err := checkLabelledSlots(cfg, slots); err != nil {
		return err
	}
	ranges, warnings, err := loadUIDRanges(cfg)
	if err != nil {
		return err
	}
	for _, w := range append(warnings, cfg.Warnings()...) {
		d.log.Warn(w)
	}
	t0 := time.Now()
	snap, err := d.proxy.Build(cfg, slots)
	if err != nil {
		return err
	}
	gen := &generation{cfg: cfg, slots: slots, uids: ranges}
	t1 := time.Now()
	// The new listeners open while the rules are prepared; the rules send
	// traffic to them only once all are open (see nft.Manager.ApplyWhen).
	var t2 time.Time
	opened := make(chan error, 1)
	go func() {
		err := d.proxy.Listen(ctx, snap)
		t2 = time.Now()
		opened <- err
	}()
	listening := sync.OnceValue(func() error { return <-opened })
	err = d.rules.apply(ctx, gen, listening)
	if lerr := listening(); lerr != nil || err != nil {
		d.proxy.Prune()
		if lerr != nil {
			return lerr
		}
		d.st.lastApply.Store(event(err))
		return err
	}
	t3 := time.Now()
	d.st.lastApply.Store(event(nil))
	d.slots.commit(slots)
	d.proxy.Install(snap)
	d.gen.Store(gen)
	d.proxy.Prune()
	d.log.Debug("config applied", "tenants", len(cfg.Tenants), "compile_us", t1.Sub(t0).Microseconds(),
		"listeners_us", t2.Sub(t1).Microseconds(), "rules_us", t3.Sub(t1).Microseconds(), // concurrent
		"total_us", time.Since(t0).Microseconds())
	return nil
}

// reload re-reads the config. An invalid file, or one the kernel refuses, is
// logged and the running config kept; live connections are never dropped.
func (d *Daemon) reload(ctx context.Context) {
	d.opts.Notifier.Reloading()
	n := d.reloads.Add(1)
	cfg, err := config.Load(d.opts.ConfigPath)
	if err == nil {
		err = firewallUnchanged(d.gen.Load().cfg, cfg)
	}
	if err == nil {
		err = d.apply(ctx, cfg)
	}
	d.st.lastReload.Store(event(err))
	if err != nil {
		d.metrics.reloads.WithLabelValues("error").Inc()
		d.log.Error("reload failed; keeping the running config", "reload", n, "err", err)
		d.opts.Notifier.Ready(fmt.Sprintf("reload #%d failed, running previous config: %v", n, err))
		return
	}
	d.metrics.reloads.WithLabelValues("ok").Inc()
	d.log.Info("config reloaded", "reload", n, "tenants", len(cfg.Tenants), "listener_ports", d.portRange())
	d.opts.Notifier.Ready(d.status())
}

// firewallUnchanged refuses reloads that change the kernel plumbing itself:
// moving marks or tables under live connections cannot be done atomically.
func firewallUnchanged(old, cfg *config.Config) error {
	a, b := old.Firewall, cfg.Firewall
	a.GuardCgroups, b.GuardCgroups = nil, nil // rule content: reloadable
	if !reflect.DeepEqual(a, b) {
		return errors.New("[firewall] settings changed: restart egressfw to apply them")
	}
	if old.Docker != cfg.Docker {
		return errors.New("[docker] settings changed: restart egressfw to apply them")
	}
	return nil
}

// shutdown stops accepting, lets live connections finish for the grace
// period, and removes the rules only when configured to.
func (d *Daemon) shutdown() error {
	d.opts.Notifier.Stopping()
	d.proxy.Close()
	cfg := d.gen.Load().cfg
	grace := cfg.Listener.ShutdownGrace.Duration
	d.log.Info("stopping: no new connections; draining", "grace", grace.String())
	if !d.proxy.Drain(grace) {
		d.log.Warn("grace period over; closing remaining connections")
	}
	d.fw.stop()
	if !cfg.Firewall.KeepRulesOnStop {
		if err := d.fw.cleanup(cfg); err != nil {
			return fmt.Errorf("remove rules on stop: %w", err)
		}
		d.log.Info("rules removed (firewall.keep_rules_on_stop = false)")
		return nil
	}
	d.log.Info("stopped; rules kept, tenants stay blocked (fail closed)")
	return nil
}

// health is the watchdog's view: nil with an accept loop on every listening
// socket (none are needed without tenants), the cgroup watcher alive, the
// ruleset in place and the sub-uid files watched.
func (d *Daemon) health() error {
	if err := d.proxy.Health(); err != nil {
		return err
	}
	if d.subUIDsLost.Load() {
		return errors.New("sub-uid files no longer watched")
	}
	return d.fw.health()
}

// rulesetChanged shows a failed restore in the service status at once (the
// watchdog withholds its pings from its next tick) and the normal status
// again after a successful one.
func (d *Daemon) rulesetChanged(err error) {
	if err != nil {
		d.opts.Notifier.Status("Unhealthy: nftables ruleset changed by another program and not restored (retrying): " + err.Error())
		return
	}
	if d.fw.health() == nil && d.gen.Load() != nil {
		d.opts.Notifier.Status(d.status())
	}
}

// status is the running state, from the generation in force (other
// goroutines than the main loop call it).
func (d *Daemon) status() string {
	n := 0
	if gen := d.gen.Load(); gen != nil {
		n = len(gen.slots)
	}
	return fmt.Sprintf("serving %d tenant(s) on ports %s", n, d.portRange()) + d.dockerStatus()
}

// dockerStatus is the part of the status about the Docker Engine API: said
// only while it cannot be read.
func (d *Daemon) dockerStatus() string {
	if gen := d.gen.Load(); gen == nil || gen.cfg.Docker.Socket == "" || d.fw.dockerLive() {
		return ""
	}
	return "; Docker API unreachable: new containers get their interface tenant only"
}

// dockerLive shows the engine found or lost in the service status, unless
// the status says the ruleset is not restored.
func (d *Daemon) dockerLive(bool) {
	if d.fw.health() == nil && d.gen.Load() != nil {
		d.opts.Notifier.Status(d.status())
	}
}

func (d *Daemon) portRange() string {
	gen := d.gen.Load()
	if gen == nil || len(gen.slots) == 0 {
		return "-"
	}
	lo, hi := uint16(65535), uint16(0)
	for _, s := range gen.slots {
		lo, hi = min(lo, s.Port), max(hi, s.Port)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

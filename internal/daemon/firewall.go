package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/egressfw/egressfw/internal/cgroup"
	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/nft"
	"github.com/egressfw/egressfw/internal/nft/nftspec"
	"github.com/egressfw/egressfw/internal/nft/rules"
	"github.com/egressfw/egressfw/internal/status"
)

// firewall owns the kernel side: the nftables table and policy routing
// (nft.Manager) and the cgroup watcher that keeps tenant cgroup ids current
// when systemd re-creates a tenant's cgroup.
type firewall struct {
	log     *slog.Logger
	metrics *metrics
	mgr     *nft.Manager

	mu      sync.Mutex
	root    string // cgroup2 mount, found on first need
	paths   []string
	watcher *cgroup.Watcher
	cancel  context.CancelFunc
	alive   atomic.Bool // the watcher goroutine runs (or no cgroups are configured)
	// unrestored is the error of the last attempt to restore the ruleset
	// after a foreign change, nil once one succeeds (see guardRuleset).
	unrestored atomic.Pointer[error]
	// restores and restoreFailures count the attempts that succeeded and
	// failed; lastRestore is the last attempt (for egressfw status).
	restores, restoreFailures atomic.Uint64
	lastRestore               atomic.Pointer[status.Event]
	ctr                       containerState // Docker-label tenants (containers.go)
}

func newFirewall(log *slog.Logger, m *metrics) (*firewall, error) {
	mgr, err := nft.New()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	f := &firewall{log: log, metrics: m, mgr: mgr}
	f.alive.Store(true)
	return f, nil
}

// baseSpec is the kernel plumbing of cfg without tenants (enough to clean up).
func baseSpec(cfg *config.Config) nftspec.Spec {
	fw := cfg.Firewall
	return nftspec.Spec{Table: fw.Table, InterceptPorts: cfg.Listener.InterceptPorts,
		MarkMask: fw.MarkMask, InterceptMark: fw.InterceptMark, BypassMark: fw.BypassMark,
		CtMarkMask: fw.CtMarkMask, RouteTable: int(fw.RouteTable), RulePriority: int(fw.RulePriority),
		Guards: cleanCgroups(fw.GuardCgroups), Containers: cfg.Docker.Socket != "",
		ContainerMarkMask: fw.ContainerMarkMask, ContainerCtMask: fw.ContainerCtMask}
}

// cleanCgroups is paths in the form package cgroup keys them on (and
// package nft requires): cgroup.Clean of each.
func cleanCgroups(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, cgroup.Clean(p))
	}
	return out
}

// nftSpec converts a generation.
func nftSpec(gen *generation) nftspec.Spec {
	cfg := gen.cfg
	spec := baseSpec(cfg)
	for _, t := range cfg.Tenants {
		s := gen.slots[t.Name]
		nt := nftspec.Tenant{Name: t.Name, Slot: s.ID, ListenerPort: s.Port, Report: t.Mode == config.ModeReport,
			Cgroups: cleanCgroups(t.Cgroups), UIDs: t.UIDs, UIDRanges: gen.uids[t.Name], Interfaces: t.Interfaces, Sources: t.SourceCIDRs, Labelled: t.Labelled()}
		if t.DNS == config.DNSEgressfw {
			nt.DNS, nt.DNSPort = nftspec.DNSIntercept, s.DNSPort
		}
		for _, d := range t.AllowDirect {
			nt.AllowDirect = append(nt.AllowDirect, nftspec.Direct{Prefix: d.CIDR, Ports: d.Ports, Proto: d.Protocol})
		}
		spec.Tenants = append(spec.Tenants, nt)
	}
	return spec
}

// cgroupPaths lists the cgroups the kernel maps key on: every tenant's and
// every guard's. All are watched, so a re-created one gets its new id.
func cgroupPaths(cfg *config.Config) []string {
	out := cleanCgroups(cfg.Firewall.GuardCgroups)
	for _, t := range cfg.Tenants {
		out = append(out, cleanCgroups(t.Cgroups)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// apply installs the ruleset of gen. When the set of tenant cgroups
// changed, a new watcher is started first so the ids it reports go into the
// same atomic replacement; the old watcher stops only after success. ready
// (see nft.Manager.ApplyWhen) reports that what the new rules point to is
// in place; its error is returned as is.
func (f *firewall) apply(ctx context.Context, gen *generation, ready func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	spec := nftSpec(gen)
	paths := cgroupPaths(gen.cfg)
	w, cancel := f.watcher, f.cancel
	if !slices.Equal(paths, f.paths) || (w == nil && len(paths) > 0) {
		var err error
		if w, cancel, err = f.watch(ctx, paths); err != nil {
			return err
		}
	}
	var ids nftspec.CgroupIDs
	if w != nil {
		ids = nftspec.CgroupIDs(w.IDs())
	}
	notReady := false
	checked := func() error {
		err := ready()
		notReady = err != nil
		return err
	}
	var b binding
	var err error
	if spec.Containers {
		b = f.bindLocked(gen)
		err = f.mgr.ApplyContainers(spec, ids, b.cs, checked)
	} else {
		err = f.mgr.ApplyWhen(spec, ids, checked)
	}
	if err != nil {
		if w != f.watcher && cancel != nil {
			cancel()
		}
		if notReady {
			return err
		}
		f.metrics.ruleApply.WithLabelValues("error").Inc()
		return fmt.Errorf("apply nftables rules: %w", err)
	}
	f.metrics.ruleApply.WithLabelValues("ok").Inc()
	if spec.Containers {
		f.bound(b, gen)
		f.log.Debug("docker: containers bound with the rules", "ports", len(b.cs), "labelled", b.labelled)
	}
	if w != f.watcher {
		if f.cancel != nil {
			f.cancel()
		}
		f.watcher, f.cancel, f.paths = w, cancel, paths
		if w != nil {
			f.alive.Store(true)
			go f.follow(w)
		}
	}
	return nil
}

// watch starts a cgroup watcher for paths (nil when there are none).
func (f *firewall) watch(ctx context.Context, paths []string) (*cgroup.Watcher, context.CancelFunc, error) {
	if len(paths) == 0 {
		return nil, nil, nil
	}
	if f.root == "" {
		root, err := cgroup.FindMount()
		if err != nil {
			return nil, nil, fmt.Errorf("tenants name cgroups: %w", err)
		}
		f.root = root
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := cgroup.Watch(wctx, f.root, paths)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return w, cancel, nil
}

// follow applies cgroup appearances and removals to the kernel maps until
// the watcher ends. Each event re-sends the complete id set, so an update
// that fails is repaired by the next.
func (f *firewall) follow(w *cgroup.Watcher) {
	for ev := range w.Events() {
		event := "removed"
		if ev.Present {
			event = "added"
		}
		f.mu.Lock()
		current := f.watcher == w
		var err error
		if current {
			err = f.mgr.SetCgroupIDs(nftspec.CgroupIDs(w.IDs()))
		}
		f.mu.Unlock()
		if !current {
			return
		}
		if err != nil {
			f.metrics.cgroupSync.WithLabelValues("error").Inc()
			f.log.Error("update tenant cgroup ids", "cgroup", ev.Path, "id", ev.ID, "err", err)
			continue
		}
		f.metrics.cgroupSync.WithLabelValues(event).Inc()
		f.log.Info("tenant cgroup "+event, "cgroup", ev.Path, "id", ev.ID)
	}
	f.mu.Lock()
	if f.watcher == w {
		f.alive.Store(false) // ended without being replaced or stopped: unhealthy
	}
	f.mu.Unlock()
}

// guardRuleset starts the watch that puts the table and policy routing back
// after changes egressfw did not make (nft.Manager.Watch): one WARN line
// per report (a report sums up the restores of a program that keeps
// changing the table, "restores" counts them) and
// egressfw_ruleset_restored_total{result="ok"} per restore; a restore
// the kernel refuses is logged, counted as an error, retried by the watch
// and makes the firewall unhealthy until one succeeds. changed, if not nil,
// is called with the error of each failed attempt, and with nil when an
// attempt succeeds after failures.
func (f *firewall) guardRuleset(ctx context.Context, changed func(error)) error {
	return f.mgr.Watch(ctx, func(r nft.Restore) {
		args := []any{"changes", r.What, "by", r.By, "attempt", r.Attempt, "throttled", r.Throttled, "restores", r.Count}
		f.noteRestore(r)
		if r.Err != nil {
			f.metrics.restored.WithLabelValues("error").Inc()
			f.unrestored.Store(&r.Err)
			f.log.Error("nftables ruleset changed by another program and not restored; retrying", append(args, "err", r.Err)...)
			if changed != nil {
				changed(r.Err)
			}
			return
		}
		f.metrics.restored.WithLabelValues("ok").Add(float64(r.Count))
		recovered := f.unrestored.Swap(nil) != nil
		f.log.Warn("nftables ruleset changed by another program; restored", append(args, "took_us", r.Took.Microseconds())...)
		if recovered && changed != nil {
			changed(nil)
		}
	})
}

// noteRestore counts a restore attempt for egressfw status.
func (f *firewall) noteRestore(r nft.Restore) {
	e := event(r.Err)
	e.By, e.What = r.By, r.What
	f.lastRestore.Store(e)
	if r.Err != nil {
		f.restoreFailures.Add(1)
	} else {
		f.restores.Add(1)
	}
}

// health is nil while the cgroup watcher runs and the ruleset is in place.
func (f *firewall) health() error {
	if !f.alive.Load() {
		return errors.New("cgroup watcher stopped")
	}
	if err := f.unrestored.Load(); err != nil {
		return fmt.Errorf("nftables ruleset changed by another program and not restored: %w", *err)
	}
	return nil
}

// stop ends the watcher; the rules stay.
func (f *firewall) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel != nil {
		f.cancel()
	}
	f.watcher, f.cancel = nil, nil
}

// cleanup removes the table, ip rules and routes.
func (f *firewall) cleanup(cfg *config.Config) error {
	return f.mgr.Cleanup(baseSpec(cfg))
}

// Rules renders what Run would install for cfg, for review.
func Rules(cfg *config.Config) (string, error) {
	gen, err := rulesGeneration(cfg)
	if err != nil {
		return "", err
	}
	ids := nftspec.CgroupIDs{}
	if root, err := cgroup.FindMount(); err == nil {
		ids = currentCgroupIDs(cfg, root)
	}
	return rules.Render(nftSpec(gen), ids)
}

// rulesGeneration is what a fresh daemon installs: slots in config order,
// and the sub-uids.
func rulesGeneration(cfg *config.Config) (*generation, error) {
	ranges, _, err := loadUIDRanges(cfg)
	if err != nil {
		return nil, err
	}
	return freshGeneration(cfg, ranges)
}

// freshGeneration assigns slots in config order, as a fresh daemon would.
func freshGeneration(cfg *config.Config, ranges uidRanges) (*generation, error) {
	slots, err := newSlotTable(slotCapacity(cfg)).plan(cfg)
	if err != nil {
		return nil, err
	}
	return &generation{cfg: cfg, slots: slots, uids: ranges}, nil
}

// Cleanup removes egressfw's table, ip rules and routes for cfg.
func Cleanup(cfg *config.Config) error {
	mgr, err := nft.New()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer mgr.Close()
	return mgr.Cleanup(baseSpec(cfg))
}

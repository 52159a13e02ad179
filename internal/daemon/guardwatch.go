package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/nft"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The guard watch (egressfw guard --watch, egressfw-guard-watch.service).
// egressfw puts its table back after another program removes it, but only
// while it runs: once it is stopped (systemctl stop keeps the rules), has
// failed to start (a config that does not load at boot, a start limit
// hit), or is between a crash and its restart, `nft flush ruleset` or
// `systemctl reload nftables` would leave the tenants unfiltered until it
// starts again. The guard watch follows the same change notifications and,
// when the table is gone and egressfw does not put it back, installs the
// rules a stopped egressfw leaves, as the boot guard does.
//
// It never fights egressfw: it acts only on a missing table and creates it
// exclusively (nft.Manager.Create: the kernel refuses the batch if a table
// of that name exists by then), so whichever comes first wins and the
// other leaves it alone; egressfw rewrites a guard table it finds when it
// starts or sees it appear. While egressfw's listeners are up it leaves
// egressfw guardRestoreDelay to restore first; otherwise it installs at
// once. It remembers the slots of the last table it saw (egressfw's), so
// its table gives every tenant the listener port egressfw gave it, and a
// starting egressfw reads the same slots back from it.

// guardRestoreDelay is how long the guard watch leaves a missing table to
// a running egressfw (which restores it within 100 ms) before installing
// its own.
const guardRestoreDelay = 300 * time.Millisecond

// guardResync is how often the guard watch looks without a notification;
// guardRetry how soon it tries again after a failed install.
const (
	guardResync = time.Minute
	guardRetry  = time.Second
)

// GuardWatch runs the guard watch on the config at path until ctx ends. The
// config is re-read for every install (the defaults if it does not load,
// as for the boot guard); its table name is read once, at start.
func GuardWatch(ctx context.Context, path string, log *slog.Logger) error {
	cfg := loadOrDefault(path, log)
	mgr, err := nft.New()
	if err != nil {
		return fmt.Errorf("guard watch: open netlink: %w", err)
	}
	defer mgr.Close()
	g := &guardWatch{mgr: mgr, path: path, table: cfg.Firewall.Table, log: log, kick: make(chan struct{}, 1)}
	if err := mgr.WatchTable(ctx, g.table, g.changed); err != nil {
		return fmt.Errorf("guard watch: %w", err)
	}
	log.Info("guard watch started: egressfw's table is put back whenever it is gone and egressfw does not restore it", "table", g.table)
	look := time.NewTimer(0)
	resync := time.NewTicker(guardResync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.kick:
		case <-resync.C:
		case <-look.C:
		}
		if again := g.look(time.Now()); again > 0 {
			look.Reset(again)
		}
	}
}

// loadOrDefault loads the config at path, or the defaults if it does not load.
func loadOrDefault(path string, log *slog.Logger) *config.Config {
	cfg, err := config.Load(path)
	if err != nil {
		log.Warn("the config cannot be loaded; guarding with the defaults", "err", err)
		d := config.Default()
		return &d
	}
	return cfg
}

type guardWatch struct {
	mgr   *nft.Manager
	path  string
	table string
	log   *slog.Logger
	kick  chan struct{}
	// slots are those of the last table seen; since is when the table
	// was first seen missing (zero while it is there).
	slots map[string]uint32
	since time.Time
}

// changed wakes the loop (a notification, or lost ones).
func (g *guardWatch) changed() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// look checks the table and, when it has been missing long enough,
// installs the guard's. It returns when to look again (0: on the next
// notification or resync).
func (g *guardWatch) look(now time.Time) time.Duration {
	ok, err := g.mgr.Installed(g.table)
	if err != nil {
		g.log.Error("guard watch: cannot list nftables tables", "err", err)
		return guardRetry
	}
	if ok {
		g.since = time.Time{}
		if slots, err := g.mgr.InstalledSlots(g.table); err == nil && len(slots) > 0 {
			g.slots = slots
		}
		return 0
	}
	if g.since.IsZero() {
		g.since = now
	}
	cfg := loadOrDefault(g.path, g.log)
	if !cfg.Firewall.KeepRulesOnStop {
		return 0 // a stopped egressfw leaves no rules on purpose
	}
	if wait := g.since.Add(guardRestoreDelay).Sub(now); wait > 0 && egressfwListening(cfg, g.slots) {
		return wait
	}
	created, err := guardInstall(g.mgr, cfg, g.slots, g.log)
	switch {
	case err != nil:
		g.log.Error("guard watch: egressfw's table is gone and the guard's cannot be installed; retrying", "table", g.table, "err", err)
		return guardRetry
	case created:
		g.log.Warn("egressfw's table was gone and egressfw did not put it back; installed the guard's: tenants fail closed until egressfw runs",
			"table", g.table, "missing_ms", time.Since(g.since).Milliseconds(), "tenants", len(cfg.Tenants))
	}
	g.since = time.Time{}
	return 0
}

// egressfwListening reports whether a TCP socket listens on a listener
// port of the slots (or, with none known, of the first slots cfg's
// tenants would get): egressfw is up and will restore its own table.
func egressfwListening(cfg *config.Config, slots map[string]uint32) bool {
	ports := map[uint16]bool{}
	for slot := range maps.Values(slots) {
		if s, err := cfg.Listener.SlotOf(slot); err == nil {
			ports[s.Port] = true
		}
	}
	for i := range len(cfg.Tenants) {
		if len(slots) > 0 {
			break
		}
		if s, err := cfg.Listener.SlotOf(uint32(i + 1)); err == nil {
			ports[s.Port] = true
		}
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := netlink.SocketDiagTCP(fam)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return true // cannot tell: leave egressfw its time
		}
		for _, s := range socks {
			if s.State == tcpListen && ports[s.ID.SourcePort] {
				return true
			}
		}
	}
	return false
}

// tcpListen is TCP_LISTEN as sock_diag reports it (include/net/tcp_states.h).
const tcpListen = 10

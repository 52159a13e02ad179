package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/egressfw/egressfw/internal/cgroup"
	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/nft"
	"github.com/egressfw/egressfw/internal/nft/nftspec"
	"github.com/egressfw/egressfw/internal/subid"
)

// Guard makes the guard cgroups and tenants of cfg fail closed before
// egressfw runs, for the boot unit egressfw-guard.service, which runs before
// anything in egressfw.slice can start. If table inet <table> exists
// (egressfw, or an earlier guard, made it) it changes nothing. Otherwise it
// creates the guard cgroups that do not exist yet, so that the rules can
// key on their ids (systemd adopts an existing directory when it starts a
// slice: the id stays), and installs the ruleset egressfw would, with no
// listener behind it: what a stopped egressfw leaves. Tenants' intercepted
// connections are then reset and the rest of their egress, and everything
// below a guard, rejected (allow_direct aside) until egressfw starts and
// replaces the table. It returns what it did, for the journal.
func Guard(cfg *config.Config, log *slog.Logger) (string, error) {
	mgr, err := nft.New()
	if err != nil {
		return "", fmt.Errorf("guard: open netlink: %w", err)
	}
	defer mgr.Close()
	created, err := guardInstall(mgr, cfg, nil, log)
	if err != nil {
		return "", fmt.Errorf("guard: %w", err)
	}
	if !created {
		return fmt.Sprintf("table inet %s is installed already; left as it is", cfg.Firewall.Table), nil
	}
	return fmt.Sprintf("installed table inet %s: %d tenant(s) and guard cgroups %v fail closed until egressfw runs",
		cfg.Firewall.Table, len(cfg.Tenants), cfg.Firewall.GuardCgroups), nil
}

// guardInstall creates the guard cgroups of cfg and installs its ruleset,
// the tenants on the given slots where they still fit (see
// slotTable.recover; the others numbered as a fresh egressfw would), unless
// table inet <table> exists: nft.Manager.Create adds it only if the kernel
// has no table of that name when it runs the batch, so it never replaces
// the table of an egressfw that runs or is starting. created is false when
// the table exists.
func guardInstall(mgr *nft.Manager, cfg *config.Config, slots map[string]uint32, log *slog.Logger) (created bool, err error) {
	if ok, err := mgr.Installed(cfg.Firewall.Table); err != nil || ok {
		return false, err
	}
	root, err := cgroup.FindMount()
	if err != nil {
		return false, err
	}
	for _, g := range cfg.Firewall.GuardCgroups {
		if err := os.MkdirAll(filepath.Join(root, cgroup.Clean(g)), 0o755); err != nil {
			return false, fmt.Errorf("create guard cgroup %s: %w", g, err)
		}
	}
	gen, err := guardGeneration(cfg, slots, log)
	if err != nil {
		return false, err
	}
	return mgr.Create(nftSpec(gen), currentCgroupIDs(cfg, root))
}

// guardGeneration is what egressfw would install for cfg, with the tenants
// on the given slots where they fit, except for sub-uid ranges that give
// a uid two tenants (or root to one), which egressfw itself refuses to
// start on: the guard must install what it can, so such a uid is blocked
// under the first tenant that claims it (own uids and uid_ranges first)
// and root is left out, with a warning; and when the file cannot be read
// every sub-uid is left out (the tenants' own uid_ranges stay).
func guardGeneration(cfg *config.Config, slots map[string]uint32, log *slog.Logger) (*generation, error) {
	// The files are read once: what is warned about is what is installed.
	db, err := subid.Load(cfg.Firewall.SubUIDFile, cfg.Firewall.PasswdFile)
	if err != nil {
		log.Warn("sub-uids are left out of the guard (the tenants' uid_ranges stay)", "err", fmt.Errorf("read sub-uids: %w", err))
		db = &subid.DB{}
	}
	ranges, warnings, err := tenantUIDRanges(cfg, db)
	for _, w := range warnings {
		log.Warn(w)
	}
	if err != nil {
		// The file gives a uid two tenants or root: keep every sub-uid it
		// gives that no earlier claim (own uids and uid_ranges first)
		// holds and that is not root, so a tenant's rootless containers
		// stay blocked too.
		log.Warn("sub-uids given to two tenants are blocked under the first that claims them, root is left out of the guard", "err", err)
		if ranges, err = guardUIDRanges(cfg, db); err != nil {
			return nil, err
		}
	}
	st := newSlotTable(slotCapacity(cfg))
	st.recover(cfg, slots)
	planned, err := st.plan(cfg)
	if err != nil {
		return nil, err
	}
	return &generation{cfg: cfg, slots: planned, uids: ranges}, nil
}

// currentCgroupIDs resolves the tenant and guard cgroups of cfg that exist
// under the cgroup2 mount root to their ids.
func currentCgroupIDs(cfg *config.Config, root string) nftspec.CgroupIDs {
	ids := nftspec.CgroupIDs{}
	for _, p := range cgroupPaths(cfg) {
		if id, err := cgroup.ID(root + "/" + p); err == nil {
			ids[p] = id
		}
	}
	return ids
}

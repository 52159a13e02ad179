package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/daemon"
)

func cmdGuard(args []string, stdout, stderr io.Writer) int {
	var path string
	var watch bool
	fs := newFlags("guard", "", "Boot guard (egressfw-guard.service runs it before anything in egressfw.slice\n"+
		"starts). If egressfw's table is not installed, create the guard cgroups and install the rules\n"+
		"egressfw would, with no listener behind them: tenants and everything below a guard cgroup\n"+
		"have no egress (allow_direct aside) until egressfw starts and replaces them. If the config\n"+
		"cannot be loaded, the defaults are used (guard_cgroups = [\"egressfw.slice\"], no tenants).\n"+
		"If the table is installed already, nothing is changed.\n\n"+
		"With --watch (egressfw-guard-watch.service), keep doing so until SIGTERM: whenever egressfw's\n"+
		"table is gone (nft flush ruleset, systemctl reload nftables) and egressfw does not put it back\n"+
		"(it is stopped or failed; a running egressfw gets 300ms), install it again, with the tenants\n"+
		"on the slots of the last table seen. Never replaces a table that exists.", stderr, &path)
	fs.BoolVar(&watch, "watch", false, "keep guarding until SIGTERM or SIGINT")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if watch {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := daemon.GuardWatch(ctx, path, log); err != nil {
			fmt.Fprintf(stderr, "egressfw: %v\n", err)
			return exitFail
		}
		return exitOK
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %v\negressfw: guard: the config cannot be loaded; guarding with the defaults\n", err)
		d := config.Default()
		cfg = &d
	}
	did, err := daemon.Guard(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "egressfw guard: %s\n", did)
	return exitOK
}

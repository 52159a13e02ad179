package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/daemon"
)

func cmdGuard(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlags("guard", "", "Boot guard (egressfw-guard.service runs it before anything in egressfw.slice\n"+
		"starts). If egressfw's table is not installed, create the guard cgroups and install the rules\n"+
		"egressfw would, with no listener behind them: tenants and everything below a guard cgroup\n"+
		"have no egress (allow_direct aside) until egressfw starts and replaces them. If the config\n"+
		"cannot be loaded, the defaults are used (guard_cgroups = [\"egressfw.slice\"], no tenants).\n"+
		"If the table is installed already, nothing is changed.", stderr, &path)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %v\negressfw: guard: the config cannot be loaded; guarding with the defaults\n", err)
		d := config.Default()
		cfg = &d
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	did, err := daemon.Guard(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "egressfw guard: %s\n", did)
	return exitOK
}

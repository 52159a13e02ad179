package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/daemon"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlags("run", "", "Run the daemon: apply the nftables rules and policy routing, open the\n"+
		"transparent listeners, serve. SIGHUP reloads the config (an invalid one is logged and\n"+
		"ignored); SIGTERM or SIGINT stops accepting, drains, and exits 0. Logs are JSON on stdout.", stderr, &path)
	cfg, code, done := loadFor(fs, args, &path, stderr, exitUsage)
	if done {
		return code
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: logLevel(cfg.Log.Level)}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	err := daemon.Run(ctx, daemon.Options{ConfigPath: path, Version: version, Log: log,
		Notifier: newNotifier(), Reload: reload})
	if err != nil {
		log.Error("egressfw failed", "err", err)
		fmt.Fprintf(stderr, "egressfw: %v\n", err)
		return exitFail
	}
	return exitOK
}

func logLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s)) // validated by config
	return l
}

func cmdRules(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlags("rules", "", "Print the nftables table, ip rules and routes egressfw would install for the\n"+
		"config, in nft syntax, for review. Nothing is changed. Existing tenant cgroups are\n"+
		"resolved to their ids; missing ones are listed as watched for.", stderr, &path)
	cfg, code, done := loadFor(fs, args, &path, stderr, exitUsage)
	if done {
		return code
	}
	out, err := daemon.Rules(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: rules: %v\n", err)
		return exitFail
	}
	fmt.Fprint(stdout, out)
	return exitOK
}

func cmdCleanup(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := newFlags("cleanup", "", "Remove egressfw's nftables table, ip rules and routes. Tenants are no longer\n"+
		"filtered afterwards. If the config cannot be read, the defaults are used.", stderr, &path)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %v; cleaning up with the default table and marks\n", err)
		d := config.Default()
		cfg = &d
	}
	if err := daemon.Cleanup(cfg); err != nil {
		fmt.Fprintf(stderr, "egressfw: cleanup: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "removed table inet %s, its ip rules and routes\n", cfg.Firewall.Table)
	return exitOK
}

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/proxy"
)

func cmdExplain(args []string, stdout, stderr io.Writer) int {
	var path, tenant, dst string
	fs := newFlags("explain", "--tenant NAME URL|HOST:PORT",
		"Dry-run a destination for a tenant: resolve it with the configured DNS and print the\n"+
			"decision, its reason, the resolved and the chosen addresses. Nothing is connected.\n"+
			"Exit 0 allow, 1 deny, 2 usage or config error.", stderr, &path)
	fs.StringVar(&tenant, "tenant", "", "tenant name (required)")
	fs.StringVar(&dst, "dst", "", "IP the client connected to (default: the name's first address); "+
		"set it to see how a SNI or Host that does not match the destination is handled")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if tenant == "" || fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DNS.Timeout.Duration+5*time.Second)
	defer cancel()
	ex, err := proxy.Explain(ctx, cfg, tenant, fs.Arg(0), dst)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: explain: %v\n", err)
		return exitUsage // a bad target or tenant, or a config that cannot run
	}
	ex.Print(stdout)
	if ex.Decision.WouldAllow { // the policy's verdict, also for report-mode tenants
		return exitOK
	}
	return exitFail
}

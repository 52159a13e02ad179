package main

import (
	"context"
	"fmt"
	"io"
	"strings"
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
	printExplanation(stdout, ex)
	if ex.Decision.WouldAllow { // the policy's verdict, also for report-mode tenants
		return exitOK
	}
	return exitFail
}

// printExplanation writes the dry run for a person.
func printExplanation(w io.Writer, ex proxy.Explanation) {
	d := &ex.Decision
	verdict := "DENY"
	switch {
	case d.Allow && d.Enforced:
		verdict = "ALLOW"
	case d.Allow && d.WouldAllow:
		verdict = "ALLOW (report mode)"
	case d.Allow:
		verdict = "DENY (report mode: would deny, lets it through)"
	}
	fmt.Fprintf(w, "tenant:      %s\ntarget:      %s\nhost:        %s port %d\n", ex.Tenant, ex.Target, ex.Host, ex.Port)
	fmt.Fprintf(w, "destination: %s (as the client connected)\n", ex.OrigDst)
	fmt.Fprintf(w, "resolved:    %s\n", joinAddrs(d.Answer.Addrs))
	if d.Answer.Dropped > 0 {
		fmt.Fprintf(w, "             (%d more dropped: dns.max_addresses)\n", d.Answer.Dropped)
	}
	if len(d.Answer.Aliases) > 0 {
		fmt.Fprintf(w, "cname:       %s\n", strings.Join(d.Answer.Aliases, " -> "))
	}
	fmt.Fprintf(w, "decision:    %s\nreason:      %s: %s\n", verdict, d.Code, d.Detail)
	if dial := d.Targets(); len(dial) > 0 {
		fmt.Fprintf(w, "would dial:  %s\n", joinAddrs(dial))
	}
}

// joinAddrs lists addresses comma-separated, "-" for none.
func joinAddrs[T fmt.Stringer](as []T) string {
	if len(as) == 0 {
		return "-"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

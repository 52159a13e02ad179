package main

import (
	"context"
	"fmt"
	"github.com/egressfw/egressfw/internal/dnsname"
	"io"
	"strings"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/proxy"
	"github.com/miekg/dns"
)

func cmdExplain(args []string, stdout, stderr io.Writer) int {
	var path, tenant, dst, qtype string
	var lookup bool
	fs := newFlags("explain", "--tenant NAME URL|HOST:PORT  |  --tenant NAME --dns [--type T] NAME",
		"Dry-run a destination for a tenant: resolve it with the configured DNS and print the\n"+
			"decision, its reason, the resolved and the chosen addresses. Nothing is connected.\n"+
			"With --dns, print what the tenant's own DNS query of NAME would be answered instead.\n"+
			"Exit 0 allow, 1 deny, 2 usage or config error.", stderr, &path)
	fs.StringVar(&tenant, "tenant", "", "tenant name (required)")
	fs.StringVar(&dst, "dst", "", "IP the client connected to (default: the name's first address); "+
		"set it to see how a SNI or Host that does not match the destination is handled")
	fs.BoolVar(&lookup, "dns", false, "explain a DNS query of the tenant, answered by egressfw (dns = \"egressfw\")")
	fs.StringVar(&qtype, "type", "A", "the query type of --dns (A, AAAA, HTTPS, ...)")
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
	if lookup {
		return explainLookup(ctx, cfg, tenant, fs.Arg(0), qtype, stdout, stderr)
	}
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

// explainLookup prints what the tenant's DNS query would be answered;
// exit 1 when the policy refuses it (or would, in report mode).
func explainLookup(ctx context.Context, cfg *config.Config, tenant, name, qtype string, stdout, stderr io.Writer) int {
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok || !dnsname.DataType(t) {
		fmt.Fprintf(stderr, "egressfw: explain: --type %q is not a DNS data type (A, AAAA, HTTPS, TXT, ...)\n", qtype)
		return exitUsage
	}
	ex, err := proxy.ExplainLookup(ctx, cfg, tenant, name, t)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw: explain: %v\n", err)
		return exitUsage
	}
	d := &ex.Decision
	fmt.Fprintf(stdout, "tenant:      %s\nquery:       %s %s (the tenant's DNS, answered by egressfw)\n", ex.Tenant, ex.Name, dns.Type(ex.Type))
	fmt.Fprintf(stdout, "answer:      %s", ex.Rcode)
	if ex.Tell != "" {
		fmt.Fprintf(stdout, " (told: %s)", ex.Tell)
	}
	if ex.Reason != "" && ex.Reason != d.Code.String() {
		// The name was allowed; the upstream failed this question.
		fmt.Fprintf(stdout, "\nreason:      %s (the name: %s)\n", ex.Reason, d.Code)
	} else {
		fmt.Fprintf(stdout, "\nreason:      %s: %s\n", d.Code, d.Detail)
	}
	if len(d.Answer.Addrs) > 0 {
		fmt.Fprintf(stdout, "resolved:    %s\n", joinAddrs(d.Answer.Addrs))
	}
	if len(d.Answer.Aliases) > 0 {
		fmt.Fprintf(stdout, "cname:       %s\n", strings.Join(d.Answer.Aliases, " -> "))
	}
	for i, rr := range ex.Records {
		label := "             "
		if i == 0 {
			label = "records:     "
		}
		fmt.Fprintf(stdout, "%s%s\n", label, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	if st := ex.Stripped; st.Any() {
		fmt.Fprintf(stdout, "stripped:    ech %d, address hints %d, QUIC-only alpn values %d, records %d\n", st.ECH, st.Hints, st.ALPN, st.Records)
	}
	if ex.Logged {
		fmt.Fprintf(stdout, "logged:      yes (%s)\n", map[bool]string{true: "report mode: enforce would refuse it, answered", false: "refused"}[d.Allow])
		return exitFail
	}
	return exitOK
}

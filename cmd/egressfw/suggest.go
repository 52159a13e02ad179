package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/suggest"
)

// stdin is what --from - reads; tests replace it.
var stdin io.Reader = os.Stdin

// suggestFlags are the options of egressfw suggest.
type suggestFlags struct {
	config, tenant, since, from string
	diff                        bool
	collapse                    int
}

func cmdSuggest(args []string, stdout, stderr io.Writer) int {
	var o suggestFlags
	fset := newFlags("suggest", "",
		"Read egressfw's connection log (journald by default) and print, per tenant, the allow_domains\n"+
			"and allow_internal that cover what the tenant did: a TOML fragment to review and paste into\n"+
			"its [[tenant]] table. Run it after a report-mode rollout; --diff shows the change instead.\n"+
			"Exit 0 when connection lines were read, 1 when none was, 2 for usage or config errors.", stderr, &o.config)
	fset.StringVar(&o.tenant, "tenant", "", "only this tenant (default: every tenant in the log and the config)")
	fset.StringVar(&o.since, "since", "", `only connections logged in this last span, like "24h" or "7d" (default: the whole log)`)
	fset.StringVar(&o.from, "from", "", "read this file of JSON log lines (egressfw's, or journalctl -o json), or - for standard input, instead of the journal")
	fset.BoolVar(&o.diff, "diff", false, "print the change against the tenant's current allow_domains and allow_internal instead")
	fset.IntVar(&o.collapse, "collapse", 2, "suggest *.domain for this many distinct subdomains of one registrable domain (0: never)")
	if code, done := parseFlags(fset, args); done {
		return code
	}
	if fset.NArg() != 0 || (o.collapse != 0 && o.collapse < 2) {
		fset.Usage()
		return exitUsage
	}
	explicit := false
	fset.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	return runSuggest(o, explicit, stdout, stderr)
}

func runSuggest(o suggestFlags, explicitConfig bool, stdout, stderr io.Writer) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(stderr, "egressfw suggest: "+format+"\n", args...)
		return code
	}
	filter := suggest.Filter{Tenant: o.tenant}
	if o.since != "" {
		d, err := parseSpan(o.since)
		if err != nil {
			return fail(exitUsage, "--since: %v", err)
		}
		filter.Since = time.Now().Add(-d)
	}
	cfg, err := suggestConfig(o, explicitConfig, stderr)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	log := suggest.NewLog()
	st, err := readLog(o.from, filter, log)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	cfgName, opts := "", suggest.Options{Collapse: o.collapse}
	if cfg != nil {
		cfgName, opts.InterceptPorts = o.config, cfg.Listener.InterceptPorts
	}
	for _, name := range suggestTenants(log, cfg, o.tenant) {
		p := suggest.NewPlan(name, log.Tenants[name], configTenant(cfg, name), opts)
		write := p.WriteFragment
		if o.diff {
			write = p.WriteDiff
		}
		if err := write(stdout, cfgName); err != nil {
			return fail(exitFail, "write: %v", err)
		}
		fmt.Fprintf(stderr, "egressfw suggest: %s\n", p.Summary())
	}
	fmt.Fprintf(stderr, "egressfw suggest: %s\n", st)
	if st.Used == 0 {
		hint := ""
		if o.from == "" {
			hint = " (reading egressfw's journal needs root or the systemd-journal group)"
		}
		return fail(exitFail, "no connection lines%s", hint)
	}
	return exitOK
}

// suggestConfig loads the config. The default path may be missing or
// unreadable (reading the journal needs no access to the config): then nil,
// with a note. An explicit path, --diff, or an invalid file must load.
func suggestConfig(o suggestFlags, explicit bool, stderr io.Writer) (*config.Config, error) {
	cfg, err := config.Load(o.config)
	switch {
	case err == nil:
		return cfg, nil
	case o.diff:
		return nil, fmt.Errorf("--diff needs the current config: %w", err)
	case !explicit && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)):
		fmt.Fprintf(stderr, "egressfw suggest: no config read (%v): unused entries are not listed\n", err)
		return nil, nil
	}
	return nil, err
}

// readLog reads the journal, standard input or a file into log.
func readLog(from string, f suggest.Filter, log *suggest.Log) (suggest.Stats, error) {
	switch from {
	case "":
		return suggest.ReadJournal(f, log)
	case "-":
		return suggest.Read(stdin, f, log)
	}
	file, err := os.Open(from)
	if err != nil {
		return suggest.Stats{}, fmt.Errorf("--from: %w", err)
	}
	defer file.Close()
	return suggest.Read(file, f, log)
}

// suggestTenants are the tenants to print: only, or those of the log and
// the config, by name.
func suggestTenants(log *suggest.Log, cfg *config.Config, only string) []string {
	if only != "" {
		return []string{only}
	}
	seen := map[string]bool{}
	for n := range log.Tenants {
		seen[n] = true
	}
	if cfg != nil {
		for _, t := range cfg.Tenants {
			seen[t.Name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func configTenant(cfg *config.Config, name string) *config.Tenant {
	if cfg == nil {
		return nil
	}
	for i := range cfg.Tenants {
		if cfg.Tenants[i].Name == name {
			return &cfg.Tenants[i]
		}
	}
	return nil
}

// parseSpan parses a Go duration, or a whole number of days ("7d").
func parseSpan(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 || d > 100*365*24*time.Hour {
		return 0, fmt.Errorf("%q is not a positive span like \"24h\", \"90m\" or \"7d\"", s)
	}
	return d, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/status"
)

// statusTopShown is how many denied names per tenant the screen lists (the
// JSON has the daemon's whole list).
const statusTopShown = 5

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var cfgPath, socket, tenant string
	var raw bool
	fs := newFlags("status", "", "Ask the running egressfw how it is: tenants, mode, open connections, the last minute's\n"+
		"connections and denials, the most denied names, the ruleset and its watch, the last reload, the\n"+
		"DNS cache. It reads the socket of metrics.status_socket (root only). Exit 1 if egressfw does not answer.", stderr, &cfgPath)
	fs.StringVar(&socket, "socket", "", "the status socket (default: metrics.status_socket of the config)")
	fs.StringVar(&tenant, "tenant", "", "show only this tenant")
	fs.BoolVar(&raw, "json", false, "print the daemon's answer as it came, one JSON object")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	if socket == "" {
		socket = statusSocket(cfgPath, stderr)
		if socket == "" {
			fmt.Fprintf(stderr, "egressfw status: %s sets metrics.status_socket = \"\": egressfw answers no status\n", cfgPath)
			return exitFail
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, r, err := status.Fetch(ctx, socket)
	if err != nil {
		fmt.Fprintf(stderr, "egressfw status: %v\n", err)
		return exitFail
	}
	if raw {
		_, _ = stdout.Write(body)
		return exitOK
	}
	if tenant != "" {
		r.Tenants = onlyTenant(r.Tenants, tenant)
		if len(r.Tenants) == 0 {
			fmt.Fprintf(stderr, "egressfw status: no tenant %q is running\n", tenant)
			return exitFail
		}
	}
	renderStatus(stdout, r, time.Local)
	return exitOK
}

// statusSocket is the socket the config names. A config that cannot be
// read (it may be mid-edit while egressfw runs the last good one) gives
// the default, with a note.
func statusSocket(path string, stderr io.Writer) string {
	cfg, err := config.Load(path)
	if err != nil {
		def := config.Default().Metrics.StatusSocket
		fmt.Fprintf(stderr, "egressfw status: %s\negressfw status: asking the default socket %s\n", firstLine(err.Error()), def)
		return def
	}
	return cfg.Metrics.StatusSocket
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func onlyTenant(ts []status.Tenant, name string) []status.Tenant {
	for _, t := range ts {
		if t.Name == name {
			return []status.Tenant{t}
		}
	}
	return nil
}

// renderStatus prints r as one screen; times in loc.
func renderStatus(w io.Writer, r status.Report, loc *time.Location) {
	when := func(t time.Time) string { return clock(t, r.Now, loc) }
	health := "healthy"
	if r.Health != "ok" {
		health = "UNHEALTHY: " + oneLine(r.Health)
	}
	fmt.Fprintf(w, "egressfw %s, up %s (started %s), %s\n", r.Version, r.Now.Sub(r.Started).Round(time.Second),
		r.Started.In(loc).Format("2006-01-02 15:04:05 MST"), health)
	fmt.Fprintf(w, "config   %s; %s\n", r.Config, reloadLine(r.Reload, when))
	fmt.Fprintf(w, "ruleset  %s\n", rulesetLine(r.Ruleset, when))
	c := r.DNSCache
	fmt.Fprintf(w, "dns      cache hit ratio %.1f%% (%d of %d lookups)\n\n", 100*c.HitRatio(), c.Hits, c.Hits+c.Misses)
	renderTenants(w, r.Tenants)
	denials := false
	for _, t := range r.Tenants {
		if len(t.TopDenied) == 0 {
			continue
		}
		denials = true
		fmt.Fprintf(w, "\n%s: most denied since %s\n", printable(t.Name), when(t.TopSince))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, n := range t.TopDenied[:min(len(t.TopDenied), statusTopShown)] {
			fmt.Fprintf(tw, "  %s\t%s\t%s\tlast %s\n", count(n), printable(n.Name), reasonOf(n), when(n.Last))
		}
		tw.Flush()
	}
	if !denials {
		fmt.Fprintf(w, "\nno denials in the last %v\n", status.TopWindow)
	}
}

// renderTenants prints the tenant table: names and modes to the left,
// numbers to the right.
func renderTenants(w io.Writer, ts []status.Tenant) {
	width := len("TENANT")
	for _, t := range ts {
		width = max(width, len(printable(t.Name)))
	}
	const row = "%-*s  %-7s  %5s  %6s  %7s  %10s  %12s  %10s\n"
	fmt.Fprintf(w, row, width, "TENANT", "MODE", "PORT", "OPEN", "NEW/MIN", "DENIED/MIN", "REPORTED/MIN", "FAILED/MIN")
	for _, t := range ts {
		m := t.LastMinute
		fmt.Fprintf(w, row, width, printable(t.Name), t.Mode, strconv.Itoa(int(t.Port)), strconv.Itoa(t.Open),
			u(m.Connections), u(m.Denied), u(m.Reported), u(m.Failed))
	}
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

// count is a name's count; "<=" when part of it may be overcount.
func count(n status.Name) string {
	if n.Overcount > 0 {
		return "<=" + strconv.FormatUint(n.Count, 10)
	}
	return strconv.FormatUint(n.Count, 10)
}

func reasonOf(n status.Name) string {
	if n.Decision == "would_deny" {
		return n.Reason + " (report mode: let through)"
	}
	return n.Reason
}

func reloadLine(r status.Reload, when func(time.Time) string) string {
	if r.Last == nil {
		return "not reloaded since start"
	}
	return fmt.Sprintf("last reload %s, %s (%d since start)", when(r.Last.Time), outcome(r.Last), r.Count)
}

func rulesetLine(r status.Ruleset, when func(time.Time) string) string {
	var parts []string
	if r.Problem != "" {
		parts = append(parts, "PROBLEM: "+r.Problem)
	}
	if a := r.LastApply; a != nil {
		parts = append(parts, fmt.Sprintf("applied %s, %s", when(a.Time), outcome(a)))
	}
	restores := fmt.Sprintf("restored %d time%s after other programs' changes", r.Restores, plural(int(r.Restores)))
	if r.Failures > 0 {
		restores += fmt.Sprintf(" (%d attempt%s refused)", r.Failures, plural(int(r.Failures)))
	}
	if l := r.LastRestore; l != nil {
		restores += fmt.Sprintf("; last %s by %s (%s), %s", when(l.Time), or(l.By, "?"), l.What, outcome(l))
	}
	return strings.Join(append(parts, restores), "; ")
}

func outcome(e *status.Event) string {
	if e.Error != "" {
		return "FAILED: " + oneLine(e.Error)
	}
	return "ok"
}

// oneLine joins the lines of a multi-line error (a config's problems).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// clock is t in loc: the time of day when it is on now's day, else the
// date too; with how long ago.
func clock(t, now time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	lt, ln := t.In(loc), now.In(loc)
	layout := "15:04:05"
	if lt.YearDay() != ln.YearDay() || lt.Year() != ln.Year() {
		layout = "2006-01-02 15:04:05"
	}
	return fmt.Sprintf("%s (%s ago)", lt.Format(layout), now.Sub(t).Round(time.Second))
}

// printable is s, quoted if it holds anything but printable ASCII: names
// come from tenants, and a terminal must not take them for control
// sequences.
func printable(s string) string {
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

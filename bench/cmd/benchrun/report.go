package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
)

var proxies = []string{"egressfw", "haproxy", "haproxy-1", "nginx", "nginx-1"}

// peerNames are the peers egressfw is held to: the best of them sets each
// target (HAProxy and nginx, at one worker and at one per core).
var peerNames = []string{"haproxy", "haproxy-1", "nginx", "nginx-1"}

// columnTitle is a peer's column head.
func columnTitle(p string) string {
	switch {
	case strings.HasPrefix(p, "egressfw"):
		return p
	case p == "haproxy" || p == "nginx":
		return map[string]string{"haproxy": "HAProxy", "nginx": "nginx"}[p] + " (1/core)"
	}
	base, n, _ := strings.Cut(p, "-")
	return map[string]string{"haproxy": "HAProxy", "nginx": "nginx"}[base] + " (" + n + ")"
}

// median of the samples (0 when none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *runner) med(peer, metric string) float64 { return median(r.s[peer][metric]) }

type row struct {
	label, metric string
	ratio         bool // show ×direct
	format        string
}

var trafficRows = []row{
	{"HTTPS new connections/s", mHTTPSRate, true, "%.0f"},
	{"HTTPS p50 latency (ms)", mHTTPSP50, true, "%.2f"},
	{"HTTPS p99 latency (ms)", mHTTPSP99, true, "%.2f"},
	{"proxy CPU per HTTPS connection, cgroup (µs)", mHTTPSCPU, false, "%.0f"},
	{"proxy CPU per HTTPS connection, process times (µs)", mHTTPSPT, false, "%.0f"},
	{"proxy CPU in the kernel, HTTPS (% of its CPU)", mHTTPSSys, false, "%.0f"},
	{"load generator CPU per HTTPS connection (µs)", mHTTPSCli, true, "%.0f"},
	{"origin + DNS CPU per HTTPS connection (µs)", mHTTPSSrv, true, "%.0f"},
	{"whole-machine CPU per HTTPS connection (µs)", mHTTPSAll, true, "%.0f"},
	{"machine busy during the HTTPS test (%)", mHTTPSBusy, false, "%.0f"},
	{"HTTP new connections/s", mHTTPRate, true, "%.0f"},
	{"HTTP p50 latency (ms)", mHTTPP50, true, "%.2f"},
	{"HTTP p99 latency (ms)", mHTTPP99, true, "%.2f"},
	{"proxy CPU per HTTP connection, cgroup (µs)", mHTTPCPU, false, "%.0f"},
	{"proxy CPU per HTTP connection, process times (µs)", mHTTPPT, false, "%.0f"},
	{"proxy CPU in the kernel, HTTP (% of its CPU)", mHTTPSys, false, "%.0f"},
	{"load generator CPU per HTTP connection (µs)", mHTTPCli, true, "%.0f"},
	{"origin + DNS CPU per HTTP connection (µs)", mHTTPSrv, true, "%.0f"},
	{"whole-machine CPU per HTTP connection (µs)", mHTTPAll, true, "%.0f"},
	{"HTTPS bulk, 1 stream (MB/s)", mBulk1, true, "%.0f"},
	{"HTTPS bulk, 8 streams (MB/s)", mBulk8, true, "%.0f"},
	{"HTTP keep-alive bulk, 1 stream (MB/s)", mBulkHTTP1, true, "%.0f"},
	{"HTTP keep-alive bulk, 8 streams (MB/s)", mBulkHTTP8, true, "%.0f"},
	{"idle connections held (of 8,000)", mIdleOpen, false, "%.0f"},
	{"RSS per idle proxied connection (KiB)", mIdleRSS, false, "%.1f"},
	{"descriptors per idle proxied connection", mIdleFDs, false, "%.1f"},
}

func (r *runner) trafficTable() string {
	var b strings.Builder
	b.WriteString("| figure | direct |")
	proxies := slices.Clone(proxies)
	for p := range r.s {
		if strings.HasPrefix(p, "egressfw-") { // BASE= builds
			proxies = slices.Insert(proxies, 1, p)
		}
	}
	for _, p := range proxies {
		fmt.Fprintf(&b, " %s |", columnTitle(p))
	}
	b.WriteString("\n|---|---:|" + strings.Repeat("---:|", len(proxies)) + "\n")
	for _, rw := range trafficRows {
		d := r.med("direct", rw.metric)
		fmt.Fprintf(&b, "| %s | %s |", rw.label, r.cell("direct", rw, 0))
		for _, p := range proxies {
			fmt.Fprintf(&b, " %s |", r.cell(p, rw, d))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *runner) cell(peer string, rw row, direct float64) string {
	v := r.s[peer][rw.metric]
	if len(v) == 0 {
		return "–"
	}
	s := fmt.Sprintf(rw.format, median(v))
	if rw.ratio && direct > 0 && peer != "direct" {
		s += fmt.Sprintf(" (%.2f×)", median(v)/direct)
	}
	if len(v) > 1 {
		s += fmt.Sprintf(" <sub>[%s–%s]</sub>", fmt.Sprintf(rw.format, slices.Min(v)), fmt.Sprintf(rw.format, slices.Max(v)))
	}
	return s
}

func (r *runner) tenantTable() string {
	var b strings.Builder
	b.WriteString("| figure | median | runs |\n|---|---:|---|\n")
	for _, rw := range []row{
		{"reload 1 → 1,000 tenants: SIGHUP to \"config reloaded\" (ms)", mApplyRel, false, "%.1f"},
		{"start with 1,000 tenants: exec to \"egressfw started\" (ms)", mApplyCold, false, "%.1f"},
		{"HTTPS new connections/s, 1 tenant", mRate1, false, "%.0f"},
		{"HTTPS new connections/s, 1,000 tenants (benchmarked tenant in the last slot)", mRate1000, false, "%.0f"},
	} {
		v := r.s["egressfw"][rw.metric]
		runs := make([]string, len(v))
		for i, x := range v {
			runs[i] = fmt.Sprintf(rw.format, x)
		}
		fmt.Fprintf(&b, "| %s | "+rw.format+" | %s |\n", rw.label, median(v), strings.Join(runs, ", "))
	}
	return b.String()
}

type target struct {
	what   string
	value  string
	pass   bool
	hasVal bool
}

func (r *runner) targets() []target {
	ef := func(m string) float64 { return r.med("egressfw", m) }
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	var ts []target
	add := func(what string, val float64, pass bool, unit string) {
		ts = append(ts, target{what: what, value: fmt.Sprintf(unit, val), pass: pass, hasVal: true})
	}
	for _, m := range []struct{ label, rate, p99, cpu string }{
		{"HTTPS", mHTTPSRate, mHTTPSP99, mHTTPSCPU}, {"HTTP", mHTTPRate, mHTTPP99, mHTTPCPU}} {
		name, v := r.bestPeer(m.cpu, true)
		add(m.label+" proxy CPU per new connection ≤ 1.0× the best peer's", ef(m.cpu), ef(m.cpu) <= v && ef(m.cpu) > 0,
			fmt.Sprintf("%%.0f µs vs %.0f µs (%s)", v, name))
		name, v = r.bestPeer(m.rate, false)
		x := ratio(ef(m.rate), v)
		add(m.label+" new-connection rate ≥ 1.0× the best peer's", x, x >= 1.0, "%.2f× "+name)
		name, v = r.bestPeer(m.p99, true)
		a := ef(m.p99)
		add(m.label+" p99 new-connection latency ≤ the best peer's", a, a <= v && a > 0, fmt.Sprintf("%%.2f ms vs %.2f ms (%s)", v, name))
		x = ratio(ef(m.rate), r.med("direct", m.rate))
		add(m.label+" new-connection rate ≥ 0.9× direct", x, x >= 0.9, "%.2f×")
	}
	for _, m := range []struct{ label, metric string }{{"1 stream", mBulk1}, {"8 streams", mBulk8}} {
		x := ratio(ef(m.metric), r.med("haproxy", m.metric))
		add("bulk throughput ("+m.label+") ≥ 1.3× HAProxy", x, x >= 1.3, "%.2f×")
	}
	open := ef(mIdleOpen)
	add(fmt.Sprintf("≤ 16 KiB RSS per idle proxied connection at %d connections (held: %.0f)", r.t.idleN, open),
		ef(mIdleRSS), ef(mIdleRSS) <= 16 && int(open) == r.t.idleN, "%.1f KiB")
	add("1,000 tenants applied (reload) in < 200 ms", ef(mApplyRel), ef(mApplyRel) < 200 && ef(mApplyRel) > 0, "%.1f ms")
	x := ratio(ef(mRate1000), ef(mRate1))
	add("rate with 1,000 tenants ≥ 0.95× rate with 1", x, x >= 0.95, "%.2f×")
	return ts
}

// bestPeer is the peer with the lowest (or highest) median of metric.
func (r *runner) bestPeer(metric string, lowest bool) (string, float64) {
	best, bv := "", 0.0
	for _, p := range peerNames {
		v := r.med(p, metric)
		if v > 0 && (best == "" || (lowest && v < bv) || (!lowest && v > bv)) {
			best, bv = p, v
		}
	}
	return best, bv
}

func (r *runner) targetTable() string {
	var b strings.Builder
	b.WriteString("| target | measured | result |\n|---|---:|---|\n")
	for _, t := range r.targets() {
		res := "**miss**"
		if t.pass {
			res = "pass"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.what, t.value, res)
	}
	return b.String()
}

func (r *runner) profileSection() string {
	if len(r.profile.files) == 0 {
		return "(profiling did not run; see results/run.log)\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Idle test against efprof: %d connections held, %d goroutines, descriptors %v, RSS %d KiB.\n\n",
		r.profile.idleOpen, r.profile.goroutines, r.profile.idleFDs, r.profile.idleRSS)
	for _, f := range r.profile.files {
		data, err := os.ReadFile(filepath.Join(r.out, "results", f))
		if err != nil {
			continue
		}
		lines := strings.Split(string(data), "\n")
		if len(lines) > 22 {
			lines = lines[:22]
		}
		fmt.Fprintf(&b, "`results/%s` (head):\n\n```\n%s\n```\n\n", f, strings.Join(lines, "\n"))
	}
	return b.String()
}

func (r *runner) report() error {
	if err := r.saveJSON(); err != nil {
		return err
	}
	chartErr := r.chart(filepath.Join(r.out, "ratios.png"))
	if chartErr != nil {
		r.logf("chart: %v", chartErr)
	}
	t, err := template.ParseFiles(filepath.Join(r.out, "BENCHMARKS.md.tmpl"))
	if err != nil {
		return fmt.Errorf("parse report template: %w", err)
	}
	errs := "none"
	if len(r.errorsSeen) > 0 {
		errs = "\n- " + strings.Join(r.errorsSeen, "\n- ")
	}
	data := map[string]any{
		"Date": r.started.UTC().Format("2006-01-02 15:04 MST"), "Duration": time.Since(r.started).Round(time.Second).String(),
		"Quick": r.quick, "Rounds": r.rounds, "Versions": versions(r.e),
		"Timing":  map[string]any{"Conc": r.t.conc, "Conn": r.t.conn, "Warmup": r.t.warmup, "Bulk": r.t.bulk, "IdleN": r.t.idleN},
		"Traffic": r.trafficTable(), "Tenants": r.tenantTable(), "Targets": r.targetTable(),
		"Profile": r.profileSection(), "Errors": errs, "Chart": chartErr == nil,
		"LoadStart": r.loadStart, "LoadEnd": loadAvg(),
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	path := filepath.Join(r.out, "BENCHMARKS.md")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	r.logf("\n%s\n%s\nwrote %s", r.trafficTable(), r.targetTable(), path)
	return nil
}

// loadAvg is /proc/loadavg's first three fields: other work on the machine
// (other users' builds and tests) shows here.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

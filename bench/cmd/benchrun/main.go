// Command benchrun is the egressfw benchmark harness (`sudo make bench`).
// It builds one network-namespace topology (tenant and proxy in a "host"
// namespace, site and DNS in a "server" namespace), measures the tenant's
// traffic direct, through egressfw, through HAProxy and through nginx in
// repeated interleaved rounds, measures egressfw with 1 and 1,000 tenants,
// profiles egressfw, and writes BENCHMARKS.md and a ratio chart.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type runner struct {
	e          *env
	loadgen    string
	dnsd       string
	out        string
	t          timing
	rounds     int
	quick      bool
	s          samples
	errorsSeen []string
	logFile    *os.File
	started    time.Time
	profile    profileResult
	loadStart  string
	sel        selection
}

func (r *runner) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	fmt.Println(line)
	if r.logFile != nil {
		fmt.Fprintln(r.logFile, line)
	}
}

func main() {
	bin := flag.String("bin", "bench/.bin", "directory with loadgen, dnsd, efprof")
	egressfw := flag.String("egressfw", "bin/egressfw", "egressfw binary")
	conf := flag.String("conf", "bench/conf", "config templates")
	out := flag.String("out", "bench", "where BENCHMARKS.md, ratios.png and results/ go")
	replotFrom := flag.String("replot", "", "only redraw OUT/ratios.png from this samples.json")
	flag.Parse()
	if *replotFrom != "" {
		if err := replot(*replotFrom, filepath.Join(*out, "ratios.png")); err != nil {
			fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
			os.Exit(1)
		}
		return
	}
	quick := os.Getenv("QUICK") == "1"
	if err := run(*bin, *egressfw, *conf, *out, quick); err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
		os.Exit(1)
	}
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func run(bin, egressfw, conf, out string, quick bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, nftables, cgroups): run sudo make bench")
	}
	root, err := cgroupRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "efbench.")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("open work dir to nginx workers: %w", err)
	}
	r := &runner{e: &env{dir: dir, confDir: abs(conf), egressfw: abs(egressfw), efprof: abs(filepath.Join(bin, "efprof")),
		cg: cgroups{root: root}, workers: runtime.GOMAXPROCS(0)},
		loadgen: abs(filepath.Join(bin, "loadgen")), dnsd: abs(filepath.Join(bin, "dnsd")), out: abs(out),
		quick: quick, s: samples{}, started: time.Now(), loadStart: loadAvg(),
		sel: selection{parts: listEnv("ONLY"), peers: listEnv("PEERS"), profiles: listEnv("PROFILES")}}

	r.t = timing{conn: 10 * time.Second, bulk: 8 * time.Second, warmup: time.Second, conc: 32, idleN: 8000}
	// Five rounds: on this shared VM a burst of other work can sink one
	// peer's measurement for a minute; the median of five shrugs off two.
	r.rounds = 5
	if quick {
		r.t.conn, r.t.bulk, r.rounds = 3*time.Second, 3*time.Second, 1
	}
	if n, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil && n > 0 {
		r.rounds = n
	}
	if err := os.MkdirAll(filepath.Join(r.out, "results"), 0o755); err != nil {
		return fmt.Errorf("create results dir: %w", err)
	}
	if r.logFile, err = os.Create(filepath.Join(r.out, "results", "run.log")); err != nil {
		return fmt.Errorf("create run log: %w", err)
	}
	defer r.logFile.Close()

	cleanup := func() {
		teardownNetns()
		r.e.cg.removeAll()
		os.RemoveAll(dir)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; fmt.Fprintln(os.Stderr, "benchrun: interrupted; cleaning up"); cleanup(); os.Exit(130) }()
	defer cleanup()
	return r.all()
}

func (r *runner) all() error {
	r.logf("egressfw benchmark (quick=%v, %d round(s), work dir %s)", r.quick, r.rounds, r.e.dir)
	if err := setupNetns(); err != nil {
		return err
	}
	if err := r.e.cg.make(tenantCg); err != nil {
		return err
	}
	if err := writeCerts(r.e.dir); err != nil {
		return err
	}
	if err := writeSite(r.e.dir); err != nil {
		return err
	}
	srv, err := startServers(r.e, r.dnsd)
	if err != nil {
		return err
	}
	defer srv.stop()
	cfg1, err := r.e.egressfwConfig("egressfw-1.toml", 1)
	if err != nil {
		return err
	}
	peers := []peer{direct{}, &egressfwPeer{e: r.e, cfg: cfg1, tenants: 1, bin: r.e.egressfw},
		&haproxyPeer{e: r.e, cfg: cfg1, workers: r.e.workers}, &nginxPeer{e: r.e, workers: r.e.workers}}
	for _, base := range strings.Split(os.Getenv("BASE"), ",") {
		// BASE=path/to/egressfw-NAME[,...]: other egressfw builds (or
		// wrappers that set its environment) measured in the same rounds
		// as "egressfw-NAME", for a change's before/after ratio.
		if base != "" {
			peers = append(peers, &egressfwPeer{e: r.e, cfg: cfg1, tenants: 1, bin: abs(base),
				label: "egressfw-" + strings.TrimPrefix(filepath.Base(base), "egressfw-")})
		}
	}
	if r.e.workers > 1 {
		// The peers at one worker too: the best peer is the lower CPU
		// per connection of either count.
		peers = append(peers, &haproxyPeer{e: r.e, cfg: cfg1, workers: 1}, &nginxPeer{e: r.e, workers: 1})
	}
	if r.sel.parts["trace"] {
		if err := r.traceProxies(peers); err != nil {
			return err
		}
	}
	for round := range r.rounds {
		r.logf("round %d/%d", round+1, r.rounds)
		for i := range peers {
			// Rotate the order each round so no peer always runs first.
			p := peers[(i+round)%len(peers)]
			if !r.sel.peer(p.name()) {
				continue
			}
			if err := r.onePeer(p); err != nil {
				return err
			}
		}
	}
	if r.sel.part("tenants") {
		if err := r.tenants(); err != nil {
			return err
		}
	}
	if r.sel.part("profile") {
		if err := r.profileEgressfw(cfg1); err != nil {
			r.logf("profiling failed: %v", err)
		}
	}
	if r.sel.narrowed() {
		r.logf("narrowed run (ONLY/PEERS): samples in results/samples.json, no report")
		return r.saveJSON()
	}
	return r.report()
}

func (r *runner) onePeer(p peer) error {
	if err := p.start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name(), err)
	}
	defer p.stop()
	return r.measurePeer(p)
}

// tenants measures egressfw with 1,000 tenants: start and reload time, and
// the new-connection rate with 1 vs 1,000 tenants configured.
func (r *runner) tenants() error {
	r.logf("tenants: 1 vs 1,000")
	if err := r.tenantCgroups(); err != nil {
		return err
	}
	cfg1000, err := r.e.egressfwConfig("egressfw-1000.toml", 1000)
	if err != nil {
		return err
	}
	cfg1, err := r.e.egressfwConfig("egressfw-1.toml", 1)
	if err != nil {
		return err
	}
	live := filepath.Join(r.e.dir, "egressfw-live.toml")
	reps := 3
	if r.quick {
		reps = 1
	}
	for rep := range reps {
		// Cold start with 1,000 tenants, then reload 1 -> 1,000.
		if err := copyFile(cfg1000, live); err != nil {
			return err
		}
		ef := &egressfwPeer{e: r.e, cfg: live, tenants: 1000, bin: r.e.egressfw}
		t0 := time.Now()
		if err := ef.start(); err != nil {
			return err
		}
		ts, _, _ := ef.p.waitLog("egressfw started", 0, time.Second)
		r.s.add("egressfw", mApplyCold, float64(ts.Sub(t0).Microseconds())/1000)
		ms, err := r.reloadTime(ef, cfg1, cfg1000, live)
		if err != nil {
			ef.stop()
			return err
		}
		r.s.add("egressfw", mApplyRel, ms)
		// The same process measures both rates, reloading between them, in
		// alternating order across reps so that drift on this shared
		// machine does not always favour one side.
		var rate1, rate1000 loadResult
		current := 1000
		for _, n := range [][2]int{{1000, 1}, {1, 1000}}[rep%2] {
			if n != current {
				if _, err := r.reloadTo(ef, map[int]string{1: cfg1, 1000: cfg1000}[n], live); err != nil {
					ef.stop()
					return err
				}
				current = n
			}
			res, err := r.load("egressfw", "conn", r.t.loadArgs("-mode", "conn", "-addr", siteIP+":443",
				"-c", fmt.Sprint(r.t.conc), "-d", r.t.conn.String())...)
			if err != nil {
				ef.stop()
				return err
			}
			if n == 1 {
				rate1 = res
			} else {
				rate1000 = res
			}
		}
		ef.stop()
		r.s.add("egressfw", mRate1, rate1.Rate)
		r.s.add("egressfw", mRate1000, rate1000.Rate)
		r.logf("  rep %d: start(1000)=%.0fms reload(1->1000)=%.1fms rate 1=%.0f 1000=%.0f", rep+1,
			last(r.s["egressfw"][mApplyCold]), ms, rate1.Rate, rate1000.Rate)
	}
	return nil
}

// tenantCgroups creates the cgroups of tenants 2..1,000.
func (r *runner) tenantCgroups() error {
	var rels []string
	for i := 1; i < 1000; i++ {
		rels = append(rels, fmt.Sprintf("%s/t%04d", cgBase, i))
	}
	return r.e.cg.make(rels...)
}

// reloadTime reloads the running egressfw to 1 tenant, then times the
// reload back to 1,000: SIGHUP to its "config reloaded" log line.
func (r *runner) reloadTime(ef *egressfwPeer, cfg1, cfg1000, live string) (float64, error) {
	if _, err := r.reloadTo(ef, cfg1, live); err != nil {
		return 0, err
	}
	return r.reloadTo(ef, cfg1000, live)
}

// reloadTo installs cfg as the live config, sends SIGHUP and returns the
// milliseconds until egressfw logged "config reloaded".
func (r *runner) reloadTo(ef *egressfwPeer, cfg, live string) (float64, error) {
	data, err := os.ReadFile(ef.p.log)
	if err != nil {
		return 0, fmt.Errorf("read egressfw log: %w", err)
	}
	seen := bytes.Count(data, []byte("\n"))
	if err := copyFile(cfg, live); err != nil {
		return 0, err
	}
	t0 := time.Now()
	_ = ef.p.cmd.Process.Signal(syscall.SIGHUP)
	ts, _, err := ef.p.waitLog("config reloaded", seen, 30*time.Second)
	if err != nil {
		return 0, err
	}
	return float64(ts.Sub(t0).Microseconds()) / 1000, nil
}

func last(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return nil
}

// saveJSON writes the raw samples next to the report.
func (r *runner) saveJSON() error {
	b, err := json.MarshalIndent(map[string]any{"samples": r.s, "errors": r.errorsSeen,
		"quick": r.quick, "rounds": r.rounds, "date": r.started.UTC().Format(time.RFC3339)}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode samples: %w", err)
	}
	return os.WriteFile(filepath.Join(r.out, "results", "samples.json"), b, 0o644)
}

// selection narrows a run for iterating on one figure: ONLY=idle,https,http,
// bulk,httpbulk,tenants,profile,trace (trace: strace and perf of each proxy, only
// when named) and PEERS=direct,egressfw,haproxy,nginx (both empty:
// everything). A narrowed run's report has gaps; publish only full runs.
type selection struct{ parts, peers, profiles map[string]bool }

func (s selection) part(name string) bool { return len(s.parts) == 0 || s.parts[name] }
func (s selection) peer(name string) bool { return len(s.peers) == 0 || s.peers[name] }

// profile selects efprof workloads: PROFILES=https-conn,http-conn,bulk8,
// reload,idle (empty: all).
func (s selection) profile(name string) bool {
	return len(s.profiles) == 0 || s.profiles[name]
}
func (s selection) narrowed() bool { return len(s.parts)+len(s.peers)+len(s.profiles) > 0 }

func listEnv(key string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(os.Getenv(key), ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}

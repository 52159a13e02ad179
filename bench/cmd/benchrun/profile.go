package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profileResult names the profile summaries written under results/.
type profileResult struct {
	files      []string
	goroutines int
	idleOpen   int
	idleFDs    map[string]int
	idleRSS    int64
}

// profileEgressfw runs efprof (egressfw's daemon in-process under pprof)
// through the HTTPS connection test, the 8-stream bulk test and the idle
// test, and writes `go tool pprof -top` summaries.
func (r *runner) profileEgressfw(cfg string) error {
	r.logf("profiling egressfw (efprof: internal/daemon under runtime/pprof)")
	res := filepath.Join(r.out, "results")
	work := []struct {
		name string
		args []string
	}{
		{"https-conn", r.t.loadArgs("-mode", "conn", "-addr", siteIP+":443", "-c", strconv.Itoa(r.t.conc), "-d", r.t.conn.String())},
		{"http-conn", r.t.loadArgs("-mode", "conn", "-addr", siteIP+":80", "-tls=false", "-c", strconv.Itoa(r.t.conc), "-d", r.t.conn.String())},
		{"bulk8", r.t.loadArgs("-mode", "bulk", "-addr", siteIP+":443", "-path", "/big", "-c", "8", "-d", r.t.bulk.String())},
	}
	for _, w := range work {
		if !r.sel.profile(w.name) {
			continue
		}
		cpu := filepath.Join(r.e.dir, "cpu-"+w.name+".pprof")
		ef := &egressfwPeer{e: r.e, cfg: cfg, bin: r.e.efprof, args: []string{"-cpuprofile", cpu}}
		if err := ef.start(); err != nil {
			return err
		}
		lr, err := r.load("efprof", w.name, w.args...)
		ef.stop()
		if err != nil {
			return err
		}
		if err := r.pprofTop(cpu, filepath.Join(res, "profile-cpu-"+w.name+".txt")); err != nil {
			return err
		}
		if err := r.pprofTop(cpu, filepath.Join(res, "profile-cpu-"+w.name+"-cum.txt"), "-cum"); err != nil {
			return err
		}
		if err := r.allocsPerConn(w.name, cpu+".allocs", res, lr.Total); err != nil {
			return err
		}
	}
	if r.sel.profile("reload") {
		if err := r.profileReload(res); err != nil {
			return err
		}
	}
	if !r.sel.profile("idle") {
		return nil
	}
	return r.profileIdle(cfg, res)
}

// profileIdle holds the idle connections against efprof and snapshots its
// heap, goroutines and descriptors.
func (r *runner) profileIdle(cfg, res string) error {
	snap := filepath.Join(r.e.dir, "idle")
	ef := &egressfwPeer{e: r.e, cfg: cfg, bin: r.e.efprof,
		args: []string{"-cpuprofile", filepath.Join(r.e.dir, "cpu-idle.pprof"), "-snapshot", snap}}
	if err := ef.start(); err != nil {
		return err
	}
	defer ef.stop()
	il, err := startIdle(r.e.cg.dir(tenantCg), r.loadgen, "-n", strconv.Itoa(r.t.idleN), "-c", "64")
	if err != nil {
		return err
	}
	defer il.close()
	time.Sleep(2 * time.Second)
	r.profile.idleOpen = il.res.Open
	r.profile.idleFDs = fdKinds(ef.pids())
	r.profile.idleRSS = rssKiB(ef.pids())
	_ = ef.p.cmd.Process.Signal(syscall.SIGUSR1)
	for range 100 {
		if _, err := os.Stat(snap + ".goroutine.txt"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	g, err := os.ReadFile(snap + ".goroutine.txt")
	if err != nil {
		return fmt.Errorf("goroutine snapshot: %w", err)
	}
	first, _, _ := strings.Cut(string(g), "\n")
	if f := strings.Fields(first); len(f) >= 4 {
		r.profile.goroutines, _ = strconv.Atoi(f[len(f)-1])
	}
	if err := os.WriteFile(filepath.Join(res, "profile-goroutines-idle.txt"), topGoroutines(string(g), 12), 0o644); err != nil {
		return fmt.Errorf("write goroutine summary: %w", err)
	}
	r.profile.files = append(r.profile.files, "profile-goroutines-idle.txt")
	if err := copyFile(snap+".memstats.txt", filepath.Join(res, "profile-memstats-idle.txt")); err != nil {
		return err
	}
	r.profile.files = append(r.profile.files, "profile-memstats-idle.txt")
	r.logf("  efprof idle: open=%d goroutines=%d fds=%v rss=%d KiB", il.res.Open, r.profile.goroutines,
		r.profile.idleFDs, r.profile.idleRSS)
	return r.pprofTop(snap+".heap.pprof", filepath.Join(res, "profile-heap-idle.txt"), "-sample_index=inuse_space")
}

// topGoroutines keeps the header and the n largest stack groups of a
// debug=1 goroutine profile (groups are already sorted by count).
func topGoroutines(s string, n int) []byte {
	groups := strings.Split(s, "\n\n")
	if len(groups) > n+1 {
		groups = groups[:n+1]
	}
	return []byte(strings.Join(groups, "\n\n") + "\n")
}

func (r *runner) pprofTop(profile, out string, extra ...string) error {
	args := append([]string{"tool", "pprof", "-top", "-nodecount=40"}, extra...)
	args = append(args, r.e.efprof, profile)
	b, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof %s: %w: %s", profile, err, b)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	// Keep the raw profile for `go tool pprof -list` (not committed).
	if err := copyFile(profile, filepath.Join(filepath.Dir(out), filepath.Base(profile))); err != nil {
		return err
	}
	r.profile.files = append(r.profile.files, filepath.Base(out))
	return nil
}

// allocsPerConn writes where efprof allocated during a workload
// (alloc_objects, -cum) and logs the exact allocations and GC cycles per
// connection of the conns the load made (warm-up included).
func (r *runner) allocsPerConn(name, profile, res string, conns int64) error {
	if err := r.pprofTop(profile, filepath.Join(res, "profile-allocs-"+name+".txt"), "-sample_index=alloc_objects"); err != nil {
		return err
	}
	b, err := os.ReadFile(profile + ".count")
	if err != nil {
		return fmt.Errorf("read allocation count: %w", err)
	}
	var mallocs, gcs float64
	if _, err := fmt.Sscan(string(b), &mallocs, &gcs); err != nil {
		return fmt.Errorf("parse %s: %w", profile+".count", err)
	}
	if n := conns; n > 0 {
		r.logf("  efprof %s: %.0f allocations and %.4f GC cycles per connection (%d connections; start-up included)",
			name, mallocs/float64(n), gcs/float64(n), n)
	}
	return nil
}

// profileReload times five reloads 1 -> 1,000 tenants under efprof.
func (r *runner) profileReload(res string) error {
	live := filepath.Join(r.e.dir, "egressfw-live.toml")
	if err := r.tenantCgroups(); err != nil {
		return err
	}
	cfg1, cfg1000 := filepath.Join(r.e.dir, "egressfw-1.toml"), filepath.Join(r.e.dir, "egressfw-1000.toml")
	if _, err := r.e.egressfwConfig("egressfw-1000.toml", 1000); err != nil {
		return err
	}
	if err := copyFile(cfg1, live); err != nil {
		return err
	}
	cpu := filepath.Join(r.e.dir, "cpu-reload.pprof")
	ef := &egressfwPeer{e: r.e, cfg: live, bin: r.e.efprof, args: []string{"-cpuprofile", cpu}}
	if err := ef.start(); err != nil {
		return err
	}
	var times []string
	for range 5 {
		ms, err := r.reloadTime(ef, cfg1, cfg1000, live)
		if err != nil {
			ef.stop()
			return err
		}
		times = append(times, fmt.Sprintf("%.0f", ms))
	}
	ef.stop()
	r.logf("  efprof reload 1->1000 ms: %s", strings.Join(times, " "))
	if err := r.pprofTop(cpu, filepath.Join(res, "profile-cpu-reload.txt")); err != nil {
		return err
	}
	return r.pprofTop(cpu, filepath.Join(res, "profile-cpu-reload-cum.txt"), "-cum")
}

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

// traceProxies (ONLY=trace) attaches `strace -c -f` and then
// `perf record -e cpu-clock -g` to each proxy (egressfw, HAProxy and nginx
// at one worker, so the figures compare one event loop with egressfw's
// runtime) under the HTTPS and the HTTP new-connection load, and writes the
// system calls and the sampled profile per connection to results/: the
// material of the per-connection budget in FINDINGS.md.
func (r *runner) traceProxies(peers []peer) error {
	res := filepath.Join(r.out, "results")
	for _, p := range peers {
		if !r.sel.peer(p.name()) || p.cgroup() == "" {
			continue
		}
		if err := p.start(); err != nil {
			return fmt.Errorf("start %s: %w", p.name(), err)
		}
		err := r.traceOne(p, res)
		p.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) traceOne(p peer, res string) error {
	var pids []string
	for _, pid := range p.pids() {
		pids = append(pids, strconv.Itoa(pid))
	}
	for _, c := range []struct {
		name, port string
		tls        bool
	}{{"https", "443", true}, {"http", "80", false}} {
		args := r.t.loadArgs("-mode", "conn", "-addr", siteIP+":"+c.port, "-tls="+strconv.FormatBool(c.tls),
			"-c", strconv.Itoa(r.t.conc), "-d", "5s")
		stem := filepath.Join(res, "trace-"+p.name()+"-"+c.name)
		// strace -c: which system calls, how many per connection.
		st := exec.Command("strace", "-c", "-f", "-o", stem+"-strace.txt", "-p", strings.Join(pids, ","))
		if err := st.Start(); err != nil {
			return fmt.Errorf("strace: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
		lr, err := r.load(p.name(), "strace", args...)
		_ = st.Process.Signal(syscall.SIGINT)
		_ = st.Wait()
		if err != nil {
			return err
		}
		appendNote(stem+"-strace.txt", fmt.Sprintf("\nconnections during the trace: %d\n", lr.Total))
		// perf: where the CPU goes, kernel and user, one sample per ms.
		data := stem + ".perf.data"
		pf := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "1000", "-g", "-o", data, "-p", strings.Join(pids, ","))
		if err := pf.Start(); err != nil {
			return fmt.Errorf("perf record: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
		lr, err = r.load(p.name(), "perf", args...)
		_ = pf.Process.Signal(syscall.SIGINT)
		_ = pf.Wait()
		if err != nil {
			return err
		}
		for _, rep := range []struct{ suffix, sort string }{{"-perf-dso.txt", "dso"}, {"-perf-sym.txt", "dso,sym"}} {
			out, err := exec.Command("perf", "report", "-i", data, "--no-children", "--sort", rep.sort,
				"--stdio", "-g", "none", "--percent-limit", "0.5").CombinedOutput()
			if err != nil {
				return fmt.Errorf("perf report: %w: %s", err, out)
			}
			note := fmt.Sprintf("# connections during the profile: %d\n", lr.Total)
			if err := os.WriteFile(stem+rep.suffix, append([]byte(note), out...), 0o644); err != nil {
				return fmt.Errorf("write perf report: %w", err)
			}
		}
		budget, err := perfBudget(data, lr.Total)
		if err != nil {
			return err
		}
		if err := os.WriteFile(stem+"-budget.txt", []byte(budget), 0o644); err != nil {
			return fmt.Errorf("write budget: %w", err)
		}
		_ = os.Remove(data)
	}
	return nil
}

func appendNote(path, note string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(note)
}

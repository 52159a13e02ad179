package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a long-running process the harness started; its output goes to
// a log file in the work dir.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startInCgroup starts bin in namespace ns, output to dir/name.log, and,
// unless cg is "", in the cgroup directory cg from its first instruction
// (clone3 with CLONE_INTO_CGROUP) with every process and thread it starts,
// so that cg's cpu.stat counts all its CPU.
func startInCgroup(dir, ns, cg, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + nsPath(ns), "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cg != "" {
		cgf, err := os.Open(cg)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open cgroup of %s: %w", name, err)
		}
		defer cgf.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cgf.Fd())
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to 15 s, then kills.
func (p *proc) stop(sig syscall.Signal) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitLog waits for a JSON log line with msg (after skip lines) and returns
// its time field and the line count so far.
func (p *proc) waitLog(msg string, skip int, timeout time.Duration) (time.Time, int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(p.log)
		lines := bytes.Split(data, []byte("\n"))
		for i := skip; i < len(lines)-1; i++ {
			var l struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal(lines[i], &l) == nil && l.Msg == msg {
				return l.Time, i + 1, nil
			}
		}
		if p.exited() {
			return time.Time{}, 0, fmt.Errorf("%s exited: %s", p.name, tail(data))
		}
		time.Sleep(5 * time.Millisecond)
	}
	data, _ := os.ReadFile(p.log)
	return time.Time{}, 0, fmt.Errorf("%s: no %q log line within %s: %s", p.name, msg, timeout, tail(data))
}

// waitListen waits until something listens on addr (tcp, hex-free check via
// /proc/net/tcp of the process's namespace).
func waitListen(pid int, port int, timeout time.Duration) error {
	want := fmt.Sprintf(":%04X 00000000:0000 0A", port)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
		if bytes.Contains(data, []byte(want)) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on port %d after %s", port, timeout)
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 800 {
		s = s[len(s)-800:]
	}
	return s
}

// family is pid and its children (nginx master and workers).
func family(pid int) []int {
	pids := []int{pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n)); err == nil {
			if f := statFields(st); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// statFields returns /proc/PID/stat fields after the command name, so
// f[0] is state, f[1] ppid, f[11] utime, f[12] stime.
func statFields(st []byte) []string {
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(st[i+1:]))
}

// rssKiB sums VmRSS over the processes.
func rssKiB(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				sum += n
			}
		}
		f.Close()
	}
	return sum
}

// cpuTicks sums utime+stime (clock ticks, 100 Hz) over the processes.
func cpuTicks(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if f := statFields(st); len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			sum += u + s
		}
	}
	return sum
}

// fdKinds counts open descriptors by kind (socket, pipe, other).
func fdKinds(pids []int) map[string]int {
	out := map[string]int{}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			t, err := os.Readlink(filepath.Join(dir, e.Name()))
			switch {
			case err != nil:
			case strings.HasPrefix(t, "socket:"):
				out["socket"]++
			case strings.HasPrefix(t, "pipe:"):
				out["pipe"]++
			default:
				out["other"]++
			}
		}
	}
	return out
}

// tenantCmd runs loadgen as the tenant: in the host namespace and the
// tenant cgroup, joined before exec so every socket it opens is the tenant's.
func tenantCmd(cgroupDir, loadgen string, args ...string) *exec.Cmd {
	script := `echo $$ > "$0/cgroup.procs" && exec "$@"`
	all := append([]string{"--net=" + nsPath(nsHost), "--", "/bin/sh", "-c", script, cgroupDir, loadgen}, args...)
	cmd := exec.Command("nsenter", all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// runLoad runs loadgen to completion and decodes its JSON result.
func runLoad(cgroupDir, loadgen string, args ...string) (loadResult, error) {
	cmd := tenantCmd(cgroupDir, loadgen, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var r loadResult
	if err != nil {
		return r, fmt.Errorf("loadgen %v: %w: %s", args, err, stderr.String())
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("loadgen %v: decode %q: %w", args, out, err)
	}
	return r, nil
}

// idleLoad is a running loadgen -mode idle holding its connections.
type idleLoad struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	res   loadResult
}

func startIdle(cgroupDir, loadgen string, args ...string) (*idleLoad, error) {
	cmd := tenantCmd(cgroupDir, loadgen, append([]string{"-mode", "idle"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("idle loadgen stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("idle loadgen stdout: %w", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start idle loadgen: %w", err)
	}
	il := &idleLoad{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &il.res)
	}
	if err != nil {
		il.close()
		return nil, fmt.Errorf("idle loadgen: %w: %s", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return il, nil
}

func (il *idleLoad) close() {
	il.stdin.Close()
	done := make(chan struct{})
	go func() { _ = il.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = il.cmd.Process.Kill()
		<-done
	}
}

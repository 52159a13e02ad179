package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
)

// perfBudget turns a `perf record -g -F 1000 -e cpu-clock` of a proxy into
// its CPU per connection by category (µs; one sample is one millisecond of
// CPU). A kernel sample is charged to the system call it ran in (the
// __x64_sys_* frame of its stack), or to the scheduler, or to interrupts
// (softirq work not inside a system call); a user sample to what its
// innermost frames name (see userCategory).
func perfBudget(data string, conns int64) (string, error) {
	out, err := exec.Command("perf", "script", "-i", data, "-F", "ip,sym,dso").Output()
	if err != nil {
		return "", fmt.Errorf("perf script: %w", err)
	}
	counts := map[string]int{}
	total := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var stack []string
	flush := func() {
		if len(stack) > 0 {
			counts[category(stack)]++
			total++
		}
		stack = stack[:0]
	}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			flush()
			continue
		}
		stack = append(stack, line)
	}
	flush()
	type kv struct {
		k string
		v int
	}
	var rows []kv
	for k, v := range counts {
		rows = append(rows, kv{k, v})
	}
	slices.SortFunc(rows, func(a, b kv) int { return b.v - a.v })
	var b strings.Builder
	fmt.Fprintf(&b, "# %d samples (1 ms each), %d connections: %.0f µs per connection\n", total, conns,
		float64(total)*1000/float64(max(conns, 1)))
	for _, r := range rows {
		fmt.Fprintf(&b, "%-40s %6.1f µs  %5.1f %%\n", r.k, float64(r.v)*1000/float64(max(conns, 1)), 100*float64(r.v)/float64(max(total, 1)))
	}
	return b.String(), nil
}

var sysFrame = regexp.MustCompile(`__(?:x64|se|do)_sys_([a-z0-9_]+)`)

// category names one sample from its stack (innermost frame first).
func category(stack []string) string {
	top := stack[0]
	if strings.Contains(top, "[kernel.kallsyms]") {
		for _, f := range stack {
			if m := sysFrame.FindStringSubmatch(f); m != nil {
				return "kernel: " + syscallGroup(m[1])
			}
		}
		for _, f := range stack {
			if strings.Contains(f, "schedule") || strings.Contains(f, "finish_task_switch") {
				return "kernel: scheduler (switch, idle)"
			}
		}
		return "kernel: interrupts, softirq, other"
	}
	return "user: " + userCategory(stack)
}

func syscallGroup(s string) string {
	switch s {
	case "recvfrom", "read", "readv", "recvmsg":
		return "read/recv"
	case "sendto", "write", "writev", "sendmsg":
		return "write/send"
	case "epoll_wait", "epoll_pwait", "epoll_ctl":
		return "epoll"
	case "futex", "nanosleep", "sched_yield", "tgkill", "getpid":
		return "futex, sleep (threads)"
	case "getsockname", "getpeername", "getsockopt", "setsockopt", "fcntl", "ioctl":
		return "socket options, addresses"
	}
	return s
}

// userCategory names a user-space sample by the first frame that says
// what the work is for.
func userCategory(stack []string) string {
	for _, f := range stack {
		switch {
		case strings.Contains(f, "runtime.gcBgMarkWorker"), strings.Contains(f, "runtime.gcDrain"),
			strings.Contains(f, "runtime.scanobject"), strings.Contains(f, "runtime.bgsweep"),
			strings.Contains(f, "runtime.markroot"), strings.Contains(f, "runtime.gcAssist"):
			return "GC"
		case strings.Contains(f, "runtime.mallocgc"), strings.Contains(f, "runtime.newobject"),
			strings.Contains(f, "runtime.makeslice"), strings.Contains(f, "runtime.growslice"):
			return "allocation"
		case strings.Contains(f, "log/slog"), strings.Contains(f, "encoding/json"), strings.Contains(f, "proxy.(*Proxy).finish"):
			return "log line, metrics"
		case strings.Contains(f, "prometheus"):
			return "log line, metrics"
		case strings.Contains(f, "/sni."):
			return "peek (ClientHello, HTTP head)"
		case strings.Contains(f, "/policy."), strings.Contains(f, "/resolver."):
			return "policy, DNS cache"
		case strings.Contains(f, "runtime.schedule"), strings.Contains(f, "runtime.findRunnable"),
			strings.Contains(f, "runtime.park_m"), strings.Contains(f, "runtime.goready"),
			strings.Contains(f, "runtime.netpoll"), strings.Contains(f, "runtime.mstart"),
			strings.Contains(f, "runtime.newproc"), strings.Contains(f, "runtime.goexit"),
			strings.Contains(f, "runtime.gopark"), strings.Contains(f, "runtime.wakep"),
			strings.Contains(f, "runtime.futex"), strings.Contains(f, "runtime.lock"), strings.Contains(f, "runtime.unlock"),
			strings.Contains(f, "runtime.stealWork"), strings.Contains(f, "runtime.runqgrab"):
			return "scheduler, goroutines, netpoll"
		case strings.Contains(f, "time.") && strings.Contains(f, "Timer"), strings.Contains(f, "runtime.(*timer"),
			strings.Contains(f, "runtime.(*timers"), strings.Contains(f, "runtime.nanotime"), strings.Contains(f, "time.Now"):
			return "timers, clock"
		case strings.Contains(f, "runtime.entersyscall"), strings.Contains(f, "runtime.exitsyscall"),
			strings.Contains(f, "syscall.Syscall"), strings.Contains(f, "syscall.RawSyscall"), strings.Contains(f, "unix.Syscall"):
			return "system call entry/exit (Go)"
		case strings.Contains(f, "tproxy."):
			return "relay, dial (Go side)"
		case strings.Contains(f, "internal/poll."), strings.Contains(f, "net."):
			return "net, poll (Go side)"
		case strings.Contains(f, "[vdso]"):
			return "timers, clock"
		}
	}
	if strings.Contains(stack[0], "runtime.") {
		return "runtime, other"
	}
	return "other"
}

package netns

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// notifySocket is a stand-in for systemd's notification socket: it
// collects what egressfw sends with sd_notify.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	ns := &notifySocket{path: filepath.Join(dir, "notify.sock"), msgs: make(chan string, 1000)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ns.msgs)
				return
			}
			ns.msgs <- string(buf[:n])
		}
	}()
	return ns
}

// waitFor reads messages until one satisfies f; it returns the messages
// read, the last one the match.
func (ns *notifySocket) waitFor(t *testing.T, what string, f func(string) bool, timeout time.Duration) []string {
	t.Helper()
	var seen []string
	deadline := time.After(timeout)
	for {
		select {
		case m := <-ns.msgs:
			seen = append(seen, m)
			if f(m) {
				return seen
			}
		case <-deadline:
			t.Fatalf("no %s within %v; got %q", what, timeout, seen)
		}
	}
}

// TestRestoreRefusedIsUnhealthy: another process takes egressfw's table
// (deletes it and creates one its socket owns, which the kernel lets no one
// else change). egressfw's restores fail: it logs each, keeps retrying,
// withholds the watchdog pings (systemd would restart it) and says why in
// STATUS=. When the owner exits, the next retry restores the table, the
// pings resume and the status is the normal one again.
func TestRestoreRefusedIsUnhealthy(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	sd := listenNotify(t, tp.dir)
	d := &daemon{t: t, tp: tp, cfgPath: tp.writeConfig("egressfw.toml", tp.config(cfgOpts{})),
		env: []string{"NOTIFY_SOCKET=" + sd.path, "WATCHDOG_USEC=400000"}} // a ping every 200ms
	d.start()
	t.Cleanup(d.stop)
	isPing := func(m string) bool { return strings.HasPrefix(m, "WATCHDOG=1") }
	sd.waitFor(t, "READY=1", func(m string) bool { return strings.HasPrefix(m, "READY=1") }, 5*time.Second)
	sd.waitFor(t, "a watchdog ping", isPing, 2*time.Second)

	i := d.since()
	owner := nsCmd(tp.host, "nft", "-i") // keeps its socket, and so its table, until stdin closes
	stdin, err := owner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); owner.Wait() })
	fmt.Fprintln(stdin, "delete table inet egressfw; add table inet egressfw { flags owner; }")

	unhealthy := func(m string) bool {
		return strings.Contains(m, "STATUS=Unhealthy") && strings.Contains(m, "nftables ruleset changed by another program and not restored")
	}
	sd.waitFor(t, "an unhealthy STATUS naming the ruleset", unhealthy, 5*time.Second)
	// No ping for 4 intervals.
	quiet := time.After(800 * time.Millisecond)
	for done := false; !done; {
		select {
		case m := <-sd.msgs:
			if isPing(m) {
				t.Errorf("watchdog ping %q while the ruleset is not restored", m)
			}
		case <-quiet:
			done = true
		}
	}
	failures := d.linesFrom(i, func(l logLine) bool {
		return l.str("level") == "ERROR" && strings.HasPrefix(l.str("msg"), "nftables ruleset changed by another program and not restored")
	})
	if len(failures) < 2 {
		t.Errorf("%d failed restores logged, want the first and at least one retry:\n%s", len(failures), d.logText())
	}
	// The series is exported at 0 from the start: the failures must count.
	if got := tp.curl(nonTenant(), "http://127.0.0.1:9464/metrics"); !regexp.MustCompile(`(?m)^egressfw_ruleset_restored_total\{result="error"\} [1-9]`).MatchString(got.body) {
		t.Errorf("metrics lack egressfw_ruleset_restored_total{result=\"error\"} above 0:\n%.2000s", got.body)
	}

	stdin.Close() // the owner exits; the kernel deletes its table
	owner.Wait()
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == restoredMsg }, 10*time.Second); !ok {
		t.Fatalf("no restore after the owner left:\n%s", d.logText())
	}
	seen := sd.waitFor(t, "a watchdog ping after the restore", isPing, 5*time.Second)
	if last := seen[len(seen)-1]; !strings.Contains(last, "STATUS=serving 2 tenant(s)") {
		t.Errorf("first ping after recovery %q, want it to restore the serving status", last)
	}
	check(t, "tenant after the restore", tp.curl(tp.inCgroup("a"), "http://"+ipBITool+"/"), deniedInt)
	if out, err := nsCmd(tp.host, "nft", "list", "table", "inet", "egressfw").CombinedOutput(); err != nil || !strings.Contains(string(out), "chain output") {
		t.Errorf("table after the restore: %v\n%s", err, out)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeSystemd is a NOTIFY_SOCKET the test listens on.
type fakeSystemd struct {
	t    *testing.T
	conn *net.UnixConn
}

// listen creates the socket and points NOTIFY_SOCKET at it; watchdogUsec
// (if not "") becomes WATCHDOG_USEC for this process.
func listen(t *testing.T, watchdogUsec string) *fakeSystemd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on fake NOTIFY_SOCKET: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", watchdogUsec)
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	return &fakeSystemd{t: t, conn: conn}
}

// next returns the next datagram, failing the test after timeout.
func (f *fakeSystemd) next(timeout time.Duration) string {
	f.t.Helper()
	msg, ok := f.read(timeout)
	if !ok {
		f.t.Fatalf("no notification within %v", timeout)
	}
	return msg
}

// read returns the next datagram, or ok=false after timeout.
func (f *fakeSystemd) read(timeout time.Duration) (string, bool) {
	buf := make([]byte, 4096)
	f.conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := f.conn.Read(buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatalf("reading CLOCK_MONOTONIC: %v", err)
	}
	return ts.Nano() / 1000
}

func TestLifecycleSequence(t *testing.T) {
	sd := listen(t, "")
	n := New()
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}

	n.Ready("Serving 2 tenants\non 2 listeners")
	if got, want := sd.next(time.Second), "READY=1\nSTATUS=Serving 2 tenants on 2 listeners\n"; got != want {
		t.Errorf("Ready sent %q, want %q", got, want)
	}

	before := monotonicUsec(t)
	n.Reloading()
	after := monotonicUsec(t)
	fields := parse(t, sd.next(time.Second))
	if fields["RELOADING"] != "1" {
		t.Errorf("Reloading sent %v, want RELOADING=1", fields)
	}
	usec, err := strconv.ParseInt(fields["MONOTONIC_USEC"], 10, 64)
	if err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%q, want a CLOCK_MONOTONIC time in [%d, %d]", fields["MONOTONIC_USEC"], before, after)
	}

	n.Ready("Serving 3 tenants")
	if got := parse(t, sd.next(time.Second)); got["READY"] != "1" || got["STATUS"] != "Serving 3 tenants" {
		t.Errorf("Ready after reload sent %v", got)
	}

	n.Status("Draining 4 connections")
	if got := parse(t, sd.next(time.Second)); len(got) != 1 || got["STATUS"] != "Draining 4 connections" {
		t.Errorf("Status sent %v, want only STATUS=", got)
	}

	n.Stopping()
	if got := parse(t, sd.next(time.Second)); got["STOPPING"] != "1" || got["STATUS"] == "" {
		t.Errorf("Stopping sent %v, want STOPPING=1 and a STATUS", got)
	}
}

// parse splits a notification into its assignments, failing on duplicates.
func parse(t *testing.T, msg string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(msg, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("notification line %q has no '='", line)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("notification %q repeats %s", msg, k)
		}
		m[k] = v
	}
	return m
}

func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	const usec = 100_000 // pings every 50ms
	sd := listen(t, strconv.Itoa(usec))
	n := New()
	if got := n.WatchdogInterval(); got != usec*time.Microsecond {
		t.Fatalf("WatchdogInterval() = %v, want %v", got, usec*time.Microsecond)
	}
	n.Status("Serving 1 tenant")
	sd.next(time.Second)

	var fault atomic.Pointer[error] // nil: healthy
	health := func() error {
		if e := fault.Load(); e != nil {
			return *e
		}
		return nil
	}
	setFault := func(msg string) {
		err := errors.New(msg)
		fault.Store(&err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Watchdog(ctx, health)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })

	// Healthy: five pings, no faster on average than the half interval.
	start := time.Now()
	for i := 0; i < 5; i++ {
		if got := sd.next(2 * time.Second); got != "WATCHDOG=1" {
			t.Fatalf("ping %d = %q, want WATCHDOG=1", i, got)
		}
	}
	if el := time.Since(start); el < 4*40*time.Millisecond {
		t.Errorf("5 pings took %v, want about 4 x 50ms", el)
	}

	// Unhealthy: one status message saying why, then silence.
	setFault("accept loop stalled")
	for {
		msg := sd.next(time.Second)
		if msg == "WATCHDOG=1" { // sent before the flag flipped
			continue
		}
		if want := "STATUS=Unhealthy: accept loop stalled; watchdog pings withheld\n"; msg != want {
			t.Fatalf("on unhealth got %q, want %q", msg, want)
		}
		break
	}
	if msg, ok := sd.read(300 * time.Millisecond); ok {
		t.Fatalf("while unhealthy got %q, want no pings", msg)
	}
	// Another reason: the status follows it, still no pings.
	setFault("ruleset not restored")
	if got, want := sd.next(time.Second), "STATUS=Unhealthy: ruleset not restored; watchdog pings withheld\n"; got != want {
		t.Fatalf("on a new reason got %q, want %q", got, want)
	}
	if msg, ok := sd.read(300 * time.Millisecond); ok {
		t.Fatalf("while unhealthy got %q, want no pings", msg)
	}

	// Healthy again: pings resume and the previous status is restored.
	fault.Store(nil)
	if got, want := sd.next(time.Second), "WATCHDOG=1\nSTATUS=Serving 1 tenant\n"; got != want {
		t.Errorf("on recovery got %q, want %q", got, want)
	}
	if got := sd.next(time.Second); got != "WATCHDOG=1" {
		t.Errorf("after recovery got %q, want WATCHDOG=1", got)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Watchdog did not return after ctx was cancelled")
	}
}

func TestNew(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name         string
		socket       bool
		usec, pid    string
		wantEnabled  bool
		wantWatchdog time.Duration
	}{
		{name: "outside systemd", socket: false, usec: "100000", pid: self},
		{name: "no watchdog", socket: true, wantEnabled: true},
		{name: "watchdog for us", socket: true, usec: "30000000", pid: self, wantEnabled: true, wantWatchdog: 30 * time.Second},
		{name: "watchdog without pid", socket: true, usec: "2000000", wantEnabled: true, wantWatchdog: 2 * time.Second},
		{name: "watchdog for another pid", socket: true, usec: "30000000", pid: "1", wantEnabled: true},
		{name: "unparsable watchdog", socket: true, usec: "soon", pid: self, wantEnabled: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sd := listen(t, tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			if !tc.socket {
				t.Setenv("NOTIFY_SOCKET", "")
			}
			n := New()
			if n.Enabled() != tc.wantEnabled || n.WatchdogInterval() != tc.wantWatchdog {
				t.Fatalf("Enabled()=%v WatchdogInterval()=%v, want %v %v",
					n.Enabled(), n.WatchdogInterval(), tc.wantEnabled, tc.wantWatchdog)
			}
			n.Ready("up")
			if err := n.Err(); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			_, got := sd.read(100 * time.Millisecond)
			if got != tc.wantEnabled {
				t.Errorf("message received = %v, want %v", got, tc.wantEnabled)
			}
		})
	}
}

func TestNoopOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for name, n := range map[string]*Notifier{"New": New(), "nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			n.Ready("x")
			n.Reloading()
			n.Status("y")
			n.Stopping()
			if err := n.Err(); err != nil {
				t.Errorf("no-op notifier reported %v", err)
			}
			returned := make(chan struct{})
			go func() {
				n.Watchdog(context.Background(), func() error { return nil })
				close(returned)
			}()
			select {
			case <-returned:
			case <-time.After(time.Second):
				t.Fatal("Watchdog blocked without a service manager")
			}
		})
	}
}

func TestSendErrorIsReported(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	n := New()
	n.Ready("up")
	n.Stopping()
	err := n.Err()
	if err == nil || !strings.Contains(err.Error(), "READY=1") {
		t.Fatalf("Ready to a missing socket = %v, want an error naming READY=1", err)
	}
}

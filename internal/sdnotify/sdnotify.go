// Package sdnotify tells systemd how the daemon is doing: READY=1 once rules
// and listeners are up, RELOADING=1 and READY=1 around a reload, STOPPING=1,
// human-readable STATUS= lines and WATCHDOG=1 pings while the daemon is
// healthy. It wraps github.com/coreos/go-systemd/v22/daemon.
//
// Outside systemd (no NOTIFY_SOCKET in the environment) every method is a
// no-op, so `egressfw run` works as a plain foreground daemon.
package sdnotify

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends state changes to the service manager. The zero value and a
// nil *Notifier are valid no-op notifiers. It is safe for concurrent use.
type Notifier struct {
	socket   string        // NOTIFY_SOCKET; "" disables every message
	watchdog time.Duration // WATCHDOG_USEC when it is meant for this process; 0 disables pings

	mu     sync.Mutex
	status string // last STATUS= sent by Ready or Status, restored when health returns
	err    error  // first failed send, for Err
}

// New returns a Notifier configured from NOTIFY_SOCKET, WATCHDOG_USEC and
// WATCHDOG_PID. Without NOTIFY_SOCKET it is a no-op; a WATCHDOG_PID naming
// another process or an unparsable WATCHDOG_USEC disables the watchdog.
func New() *Notifier {
	n := &Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	if n.socket == "" {
		return n
	}
	if wd, err := daemon.SdWatchdogEnabled(false); err == nil {
		n.watchdog = wd
	}
	return n
}

// Enabled reports whether a service manager is listening.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval is the WATCHDOG_USEC systemd asked for (0: no watchdog).
// Pings are sent at half of it.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Ready reports that startup or a reload finished: rules are applied and the
// listeners accept. status is shown by `systemctl status`.
func (n *Notifier) Ready(status string) {
	n.remember(status)
	n.send(daemon.SdNotifyReady + "\n" + statusLine(status))
}

// Reloading reports that a reload (SIGHUP) started. It carries
// MONOTONIC_USEC as systemd (>= 253, Type=notify-reload) requires; Ready must
// follow when the reload is done, whether it succeeded or not.
func (n *Notifier) Reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec() +
		statusLine("Reloading configuration"))
}

// Stopping reports that shutdown started and live connections are draining.
func (n *Notifier) Stopping() {
	n.send(daemon.SdNotifyStopping + "\n" + statusLine("Stopping: draining connections"))
}

// Status sets the free-form status line `systemctl status` shows.
func (n *Notifier) Status(status string) {
	n.remember(status)
	n.send(statusLine(status))
}

// Watchdog sends WATCHDOG=1 every WatchdogInterval()/2 while health()
// returns nil, and withholds it (so systemd restarts the service once
// WatchdogSec passes) while health() returns an error, which STATUS= then
// shows (updated when the reason changes). It returns when ctx is done, or
// at once when systemd asked for no watchdog.
func (n *Notifier) Watchdog(ctx context.Context, health func() error) {
	interval := n.WatchdogInterval() / 2
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	wasHealthy, reason := true, ""
	for {
		err := health()
		switch {
		case err == nil && !wasHealthy:
			n.send(daemon.SdNotifyWatchdog + "\n" + statusLine(n.lastStatus()))
		case err == nil:
			n.send(daemon.SdNotifyWatchdog)
		case wasHealthy || err.Error() != reason:
			reason = err.Error()
			n.send(statusLine("Unhealthy: " + reason + "; watchdog pings withheld"))
		}
		wasHealthy = err == nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Err returns the first notification that could not be sent, if any. A
// lost message is not fatal (systemd times the start out or the watchdog
// fires), so the methods do not return it; the daemon may log it.
func (n *Notifier) Err() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *Notifier) send(state string) {
	if !n.Enabled() || state == "" {
		return
	}
	// go-systemd reads NOTIFY_SOCKET itself; New saw it set, and nothing
	// in egressfw unsets it.
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.mu.Lock()
		if n.err == nil {
			n.err = fmt.Errorf("notifying systemd (%s): %w", firstLine(state), err)
		}
		n.mu.Unlock()
	}
}

func (n *Notifier) remember(status string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.status = status
	n.mu.Unlock()
}

func (n *Notifier) lastStatus() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// statusLine formats a STATUS= assignment; newlines would end it early, so
// they become spaces.
func statusLine(s string) string {
	if s == "" {
		return ""
	}
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return "STATUS=" + string(b) + "\n"
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

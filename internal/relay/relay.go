// Package relay moves the bytes of proxied TCP connections on a few event
// loops, one per core, instead of on goroutines: a connection costs no
// goroutine, no stack and no scheduler hand-off while its bytes move, only
// its two sockets registered with the loop's epoll(7) and, while bytes are
// in flight, a pipe.
//
// Add hands a pair of connected sockets to a loop (after writing the bytes
// already read from the client to upstream) and returns at once; the pair's
// done function is called exactly once, when both directions have ended, a
// direction failed, or the pair went idle. The semantics are those of
// tproxy.Splice: each direction moves bytes with splice(2) through a pipe
// taken from tproxy's pool only while bytes move (the payload never enters user
// space); a direction that reaches EOF shuts down the write side of its
// destination (half-close) while the other keeps going; a failure resets
// both connections; a pair where no byte moved in either direction for the
// idle timeout (the kernel's byte counters are read before deciding, so
// bytes still being acknowledged count) is reset with ErrIdle.
//
// done runs on a goroutine of the loop's own (its finisher), woken once per
// batch of ended pairs: a done that blocks (a log write to a stalled
// journal) delays the next pairs' done, never anyone's bytes.
package relay

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/egressfw/egressfw/internal/tproxy"
	"golang.org/x/sys/unix"
)

// ErrIdle is the error of a pair reset because no byte moved in either
// direction for its idle timeout: tproxy's, so errors.Is matches either
// relay's.
var ErrIdle = tproxy.ErrIdle

// Done receives a pair's end: up counts the bytes sent to upstream (the
// prefix included), down the bytes sent to the client; err is nil when both
// directions ended with EOF.
type Done func(up, down int64, err error)

// Relay is a set of event loops.
type Relay struct {
	loops []*loop
	next  atomic.Uint32
}

// New starts n event loops (n <= 0: one per GOMAXPROCS).
func New(n int) (*Relay, error) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	r := &Relay{}
	for range n {
		l, err := newLoop()
		if err != nil {
			r.Close()
			return nil, err
		}
		r.loops = append(r.loops, l)
		go l.run()
	}
	return r, nil
}

// Close stops the loops; the pairs they hold are reset, their done called
// with net.ErrClosed.
func (r *Relay) Close() {
	for _, l := range r.loops {
		l.stop()
	}
}

// Add relays client <-> upstream: it writes prefix to upstream (bounded by
// idle), takes over both sockets (the *net.TCPConn values are closed; the
// sockets live on in the loop) and returns. done is called exactly once:
// by the loop's finisher when the pair ends, or before Add returns if the
// prefix could not be written or the sockets not taken over.
func (r *Relay) Add(client, upstream *net.TCPConn, prefix []byte, idle time.Duration, done Done) {
	var up int64
	if len(prefix) > 0 {
		n, err := tproxy.WritePrefix(upstream, prefix, idle)
		if up = int64(n); err != nil {
			client.Close()
			upstream.Close()
			done(up, 0, err)
			return
		}
	}
	var fds [2]int
	var err error
	if fds[0], err = takeOver(client); err == nil {
		if fds[1], err = takeOver(upstream); err != nil {
			abortFd(fds[0])
		}
	} else {
		upstream.Close()
	}
	if err != nil {
		done(up, 0, err)
		return
	}
	p := &pair{fd: fds, idle: idle, prefix: up, done: done}
	r.loops[r.next.Add(1)%uint32(len(r.loops))].add(p)
}

// takeOver duplicates c's socket and closes c (which leaves the runtime's
// poller); the duplicate is the loop's. On failure c is reset.
func takeOver(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return -1, fmt.Errorf("raw connection: %w", err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		_ = c.SetLinger(0)
		c.Close()
		return -1, fmt.Errorf("take over socket: %w", errors.Join(err, derr))
	}
	c.Close()
	return fd, nil
}

// abortFd resets and closes a socket the loop owns.
func abortFd(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	_ = unix.Close(fd)
}

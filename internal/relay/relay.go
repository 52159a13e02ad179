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
// taken from a pool only while bytes move (the payload never enters user
// space); a direction that reaches EOF shuts down the write side of its
// destination (half-close) while the other keeps going; a failure resets
// both connections; a pair where no byte moved in either direction for the
// idle timeout (the kernel's byte counters are read before deciding, so
// bytes still being acknowledged count) is reset with ErrIdle.
//
// done runs on the loop: it must not block (the proxy's logs a line and
// counts; a loop stalls while it runs).
package relay

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrIdle is the error of a pair reset because no byte moved in either
// direction for its idle timeout.
var ErrIdle = errors.New("connection idle timeout")

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
// on the loop when the pair ends, or before Add returns if the prefix
// could not be written or the sockets not taken over.
func (r *Relay) Add(client, upstream *net.TCPConn, prefix []byte, idle time.Duration, done Done) {
	var up int64
	if len(prefix) > 0 {
		n, err := writePrefix(upstream, prefix, idle)
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

// writePrefix sends the peeked bytes, bounded by the idle timeout so that an
// upstream that never reads cannot hold the pair forever.
func writePrefix(upstream *net.TCPConn, prefix []byte, idle time.Duration) (int, error) {
	if idle > 0 {
		if err := upstream.SetWriteDeadline(time.Now().Add(idle)); err != nil {
			return 0, fmt.Errorf("write prefix to upstream: %w", err)
		}
	}
	n, err := upstream.Write(prefix)
	if err == nil && idle > 0 {
		err = upstream.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		return n, fmt.Errorf("write prefix to upstream: %w", err)
	}
	return n, nil
}

// abortFd resets and closes a socket the loop owns.
func abortFd(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	_ = unix.Close(fd)
}

// pipes is the process-wide free list of splice pipes (see getPipe).
var pipes struct {
	mu   sync.Mutex
	free []pipe
}

type pipe struct{ r, w int }

// maxFreePipes bounds the free list: pipes are held only while bytes move,
// so the list is sized by concurrent transfers, not by connections.
const maxFreePipes = 64

// pipeSize is asked for each pipe: it bounds one splice(2) from a socket
// (see tproxy's pipeSize for the trade-off).
const pipeSize = 256 << 10

func getPipe() (pipe, error) {
	pipes.mu.Lock()
	if n := len(pipes.free); n > 0 {
		p := pipes.free[n-1]
		pipes.free = pipes.free[:n-1]
		pipes.mu.Unlock()
		return p, nil
	}
	pipes.mu.Unlock()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return pipe{}, fmt.Errorf("create splice pipe: %w", err)
	}
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return pipe{fds[0], fds[1]}, nil
}

// putPipe returns an empty pipe to the free list; one that still holds
// bytes, or that the full list has no room for, is closed.
func putPipe(p pipe, empty bool) {
	if empty {
		pipes.mu.Lock()
		if len(pipes.free) < maxFreePipes {
			pipes.free = append(pipes.free, p)
			pipes.mu.Unlock()
			return
		}
		pipes.mu.Unlock()
	}
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

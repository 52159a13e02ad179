package tproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrIdle is returned by Splice when no byte moved in either direction for the
// idle timeout and the pair was closed.
var ErrIdle = errors.New("connection idle timeout")

// Splice proxies a client connection to its upstream until both directions
// are finished, then closes both connections.
//
// prefix (the bytes already read from the client, e.g. a peeked ClientHello)
// is written to upstream first; the client connection is then copied from
// where it stands. Each direction moves bytes with splice(2) through a pipe
// taken from a process-wide pool only while bytes are moving, so the payload
// never enters user space and an idle pair holds no descriptor beyond its
// two sockets. One direction runs on the caller's goroutine, the other on a
// second one. When one direction reaches EOF, the write side of its
// destination is shut down (half-close) and the other direction keeps
// running. If a direction fails, both connections are reset; that includes
// failing to create a pipe (the process is out of descriptors): there is no
// silent fallback to a user-space copy.
//
// If idle > 0, the pair is closed with ErrIdle once no byte has moved in
// either direction for between idle and 1.5*idle. Progress is read from the
// kernel's per-socket TCP_INFO byte counters every idle/4 by a runtime timer
// (no goroutine while it waits), so the copy loops need no deadlines,
// wrappers or per-read work.
//
// up counts bytes sent to upstream (including prefix), down bytes sent to the
// client. err is nil when both directions ended with EOF.
func Splice(client, upstream *net.TCPConn, prefix []byte, idle time.Duration) (up, down int64, err error) {
	return splice(client, upstream, prefix, idle, spliceCopy)
}

// copyFunc copies src to dst until EOF or error.
type copyFunc func(dst, src *net.TCPConn) (int64, error)

func splice(client, upstream *net.TCPConn, prefix []byte, idle time.Duration, copyFn copyFunc) (up, down int64, err error) {
	defer client.Close()
	defer upstream.Close()
	if len(prefix) > 0 {
		n, err := writePrefix(upstream, prefix, idle)
		if err != nil {
			return int64(n), 0, err
		}
		up = int64(n)
	}
	s := &pairState{client: client, upstream: upstream}
	if idle > 0 {
		s.watch(idle)
	}
	var wg sync.WaitGroup
	wg.Go(func() { down = s.pump(client, upstream, false, copyFn) })
	up += s.pump(upstream, client, true, copyFn)
	wg.Wait()
	return up, down, s.finish()
}

// pairState is what the two directions and the idle watchdog of one pair
// share: the first failure, which resets both connections.
type pairState struct {
	client, upstream *net.TCPConn

	mu       sync.Mutex
	err      error // first failure (or ErrIdle); set once
	finished bool  // Splice is returning: the watchdog must not re-arm
	eofs     int   // directions that ended with EOF

	idle     time.Duration
	timer    *time.Timer
	lastSeen uint64    // progress() at the last check that saw movement
	lastMove time.Time // when that check was made
}

// pump copies one direction and half-closes its destination on EOF.
func (s *pairState) pump(dst, src *net.TCPConn, toUpstream bool, copyFn copyFunc) int64 {
	n, err := copyFn(dst, src)
	if err != nil {
		s.fail(fmt.Errorf("splice %s: %w", direction(toUpstream), err))
		return n
	}
	if s.halfClose() {
		// A peer that already went away makes this fail; the other
		// direction reports that.
		_ = dst.CloseWrite()
	}
	return n
}

// halfClose records a direction's EOF and reports whether its destination
// needs a shutdown(SHUT_WR): not when the other direction has already ended,
// since the close that follows at once sends the same FIN.
func (s *pairState) halfClose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eofs++
	return s.eofs == 1
}

// fail records the pair's first failure and resets both connections so that
// blocked copies return at once and both peers learn that it failed. Later
// failures (the other direction seeing the reset) are not reported.
func (s *pairState) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		abort(s.client, s.upstream)
	}
}

// watch arms the idle watchdog.
func (s *pairState) watch(idle time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle = idle
	// No counters are read here (that would be two getsockopt(2) calls on
	// every connection, most of which end before the first check): the
	// first check takes the baseline, as if bytes had just moved.
	s.lastSeen, s.lastMove = noBaseline, time.Now()
	s.timer = time.AfterFunc(s.period(), s.check)
}

func (s *pairState) period() time.Duration { return max(s.idle/4, time.Millisecond) }

// check runs on the watchdog's timer: it resets the pair if nothing moved
// for idle, else re-arms.
func (s *pairState) check() {
	// Take the clock before the counters: lastMove is taken after the read
	// and checked before the next one, so the silence is never
	// overestimated, even when the timer fires late.
	checked := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished || s.err != nil {
		return
	}
	if p := progress(s.client, s.upstream); p != s.lastSeen {
		s.lastSeen, s.lastMove = p, time.Now()
	} else if checked.Sub(s.lastMove) >= s.idle {
		s.err = ErrIdle
		abort(s.client, s.upstream)
		return
	}
	s.timer.Reset(s.period())
}

// noBaseline marks lastSeen before the first check: no real sum of byte
// counters reaches it.
const noBaseline = ^uint64(0)

// finish stops the watchdog and returns the pair's first failure.
func (s *pairState) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = true
	if s.timer != nil {
		s.timer.Stop()
	}
	return s.err
}

func direction(toUpstream bool) string {
	if toUpstream {
		return "client to upstream"
	}
	return "upstream to client"
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

// abort resets both connections so that blocked copies return at once and
// both peers learn that the proxied connection failed.
func abort(conns ...*net.TCPConn) {
	for _, c := range conns {
		_ = c.SetLinger(0)
		_ = c.Close()
	}
}

// progress sums the kernel's payload byte counters of both sockets: bytes
// received from each peer and bytes each peer acknowledged. The sum changes
// iff some byte moved. A closed socket contributes 0.
func progress(conns ...*net.TCPConn) uint64 {
	var sum uint64
	for _, c := range conns {
		rc, err := c.SyscallConn()
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO); err == nil {
				sum += ti.Bytes_received + ti.Bytes_acked
			}
		})
	}
	return sum
}

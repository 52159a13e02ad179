package tproxy

import (
	"errors"
	"fmt"
	"net"
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
// where it stands. Each direction is a TCPConn.ReadFrom between the two raw
// *net.TCPConn values, which Go implements with splice(2) on Linux, so the
// payload never enters user space. When one direction reaches EOF, the write
// side of its destination is shut down (half-close) and the other direction
// keeps running. If a direction fails, both connections are reset.
//
// If idle > 0, the pair is closed with ErrIdle once no byte has moved in
// either direction for between idle and 1.5*idle. Progress is read from the
// kernel's per-socket TCP_INFO byte counters by a watchdog on a ticker of
// idle/4, so the copy loops need no deadlines, wrappers or per-read work.
//
// up counts bytes sent to upstream (including prefix), down bytes sent to the
// client. err is nil when both directions ended with EOF.
func Splice(client, upstream *net.TCPConn, prefix []byte, idle time.Duration) (up, down int64, err error) {
	return splice(client, upstream, prefix, idle, spliceCopy)
}

// copyFunc copies src to dst until EOF or error.
type copyFunc func(dst, src *net.TCPConn) (int64, error)

// spliceCopy hands the raw connections to TCPConn.ReadFrom, which takes the
// splice(2) path for a *net.TCPConn source. Do not wrap either side: any
// wrapper hides the type and silently falls back to a user-space copy.
func spliceCopy(dst, src *net.TCPConn) (int64, error) { return dst.ReadFrom(src) }

type halfResult struct {
	toUpstream bool
	n          int64
	err        error
}

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
	results := make(chan halfResult, 2)
	go pump(upstream, client, true, copyFn, results)
	go pump(client, upstream, false, copyFn, results)

	var tick <-chan time.Time
	if idle > 0 {
		t := time.NewTicker(max(idle/4, time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	lastSeen := progress(client, upstream)
	lastMove := time.Now()
	var aborted bool
	for done := 0; done < 2; {
		select {
		case r := <-results:
			done++
			if r.toUpstream {
				up += r.n
			} else {
				down += r.n
			}
			if r.err != nil && !aborted {
				err = fmt.Errorf("splice %s: %w", direction(r.toUpstream), r.err)
				aborted = true
				abort(client, upstream)
			}
		case <-tick:
			// Use the clock, not the tick's timestamp: a tick received
			// late would date observed movement into the past. lastMove is
			// taken after the read and checked before the next one, so the
			// silence is never overestimated.
			checked := time.Now()
			if p := progress(client, upstream); p != lastSeen {
				lastSeen, lastMove = p, time.Now()
			} else if checked.Sub(lastMove) >= idle && !aborted {
				err = ErrIdle
				aborted = true
				abort(client, upstream)
			}
		}
	}
	return up, down, err
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

// pump copies one direction and half-closes its destination on EOF.
func pump(dst, src *net.TCPConn, toUpstream bool, copyFn copyFunc, out chan<- halfResult) {
	n, err := copyFn(dst, src)
	if err == nil {
		// A peer that already went away makes this fail; the other
		// direction reports that.
		_ = dst.CloseWrite()
	}
	out <- halfResult{toUpstream, n, err}
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

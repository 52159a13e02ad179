package tproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxFreePipes bounds the process-wide free list of splice pipes. Pipes are
// held only while bytes move, so the list is sized by concurrent transfers,
// not by open connections; 64 pipes are 128 descriptors at most.
const maxFreePipes = 64

// pipeSize is the capacity asked for each pipe. It bounds what one splice(2)
// from a socket moves: 256 KiB takes ~10 calls per MiB where the default
// 64 KiB takes ~33 and 1 MiB (Go's choice) ~4, at the same measured
// throughput. An unprivileged process (the service runs as a DynamicUser)
// may hold pipe-user-pages-soft (64 MiB) of pipe capacity before new pipes
// shrink to 2 pages and F_SETPIPE_SZ fails; a full free list takes 16 MiB.
const pipeSize = 256 << 10

// maxSplice is what one splice(2) from a socket asks for; the pipe's
// capacity bounds what it actually moves.
const maxSplice = 1 << 20

const spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE

// pipe is a non-blocking pipe used as the kernel-side buffer of splice(2).
type pipe struct{ r, w int }

var pipes struct {
	mu   sync.Mutex
	free []pipe
}

// getPipe takes an empty pipe from the free list or creates one.
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
	// Ignore failure: a default-sized pipe works, with more system calls.
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return pipe{fds[0], fds[1]}, nil
}

// putPipe returns a pipe to the free list; a pipe that still holds bytes
// (its transfer failed) or that the full list has no room for is closed.
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

// errNoProgress guards against a splice(2) from a non-empty pipe that moves
// nothing and reports no error, which would otherwise spin.
var errNoProgress = errors.New("splice moved no bytes")

// copier moves one direction with splice(2): src -> pipe -> dst. It waits
// for src to become readable through the netpoller without holding a pipe,
// takes a pipe only for the bytes that are there, and gives it back once
// the pipe is empty and src has nothing more. An idle direction thus costs
// no descriptor beyond its sockets.
type copier struct {
	p       pipe
	hasPipe bool
	inPipe  int   // bytes in p, not yet written to dst
	eof     bool  // src reached EOF
	written int64 // bytes written to dst
	err     error // failure of the last callback

	// The RawConn callbacks, bound once so that each wait does not
	// allocate a closure.
	fill, drain func(fd uintptr) bool
}

// spliceCopy copies src to dst until EOF or error with splice(2), so the
// payload never enters user space.
func spliceCopy(dst, src *net.TCPConn) (int64, error) {
	srcRC, err := src.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("raw source connection: %w", err)
	}
	dstRC, err := dst.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("raw destination connection: %w", err)
	}
	c := &copier{}
	c.fill, c.drain = c.fillPipe, c.drainPipe
	defer c.release()
	for {
		if err := srcRC.Read(c.fill); err != nil {
			return c.written, fmt.Errorf("wait to read: %w", err)
		}
		if c.err != nil || c.eof {
			return c.written, c.err
		}
		if err := dstRC.Write(c.drain); err != nil {
			return c.written, fmt.Errorf("wait to write: %w", err)
		}
		if c.err != nil {
			return c.written, c.err
		}
	}
}

// release gives the pipe back, if the copier holds one.
func (c *copier) release() {
	if c.hasPipe {
		putPipe(c.p, c.inPipe == 0)
		c.hasPipe = false
	}
}

// fillPipe is the source's read callback: it splices what src has into an
// empty pipe. It returns false (wait for readability) after giving the pipe
// back when src has nothing: the pipe was empty, so EAGAIN is the socket's.
func (c *copier) fillPipe(fd uintptr) bool {
	if !c.hasPipe {
		p, err := getPipe()
		if err != nil {
			c.err = err
			return true
		}
		c.p, c.hasPipe = p, true
	}
	for {
		n, err := unix.Splice(int(fd), nil, c.p.w, nil, maxSplice, spliceFlags)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			c.release()
			return false
		case err != nil:
			c.err = fmt.Errorf("splice from socket: %w", err)
		case n == 0:
			c.eof = true
		default:
			c.inPipe = int(n)
		}
		return true
	}
}

// drainPipe is the destination's write callback: it splices the pipe's
// bytes into dst, returning false (wait for writability) on EAGAIN.
func (c *copier) drainPipe(fd uintptr) bool {
	for c.inPipe > 0 {
		n, err := unix.Splice(c.p.r, nil, int(fd), nil, c.inPipe, spliceFlags)
		if n > 0 {
			c.inPipe -= int(n)
			c.written += n
			continue
		}
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case nil:
			err = errNoProgress
		}
		c.err = fmt.Errorf("splice to socket: %w", err)
		return true
	}
	return true
}

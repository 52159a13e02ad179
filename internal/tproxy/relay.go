package tproxy

import (
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Relay proxies a client connection to its upstream with two pumps of the
// caller's, one per direction, for a caller that reads what it relays (the
// HTTP/1 relay, which judges every request): toUpstream runs on the
// caller's goroutine, toClient on a second one. A pump moves its
// direction's bytes (with a Splicer), half-closes its destination itself
// when its direction is done, and returns the bytes it sent and nil; an
// error resets both connections and is Relay's error (the first one).
// Once both pumps have returned, both connections are closed. idle is as
// in Splice: the pair is reset with ErrIdle once no byte moved either way
// for between idle and 1.5*idle.
func Relay(client, upstream *net.TCPConn, idle time.Duration, toUpstream, toClient func() (int64, error)) (up, down int64, err error) {
	defer client.Close()
	defer upstream.Close()
	s := &pairState{client: client, upstream: upstream}
	if idle > 0 {
		s.watch(idle)
	}
	var wg sync.WaitGroup
	wg.Go(func() { down = s.run(toClient, false) })
	up = s.run(toUpstream, true)
	wg.Wait()
	return up, down, s.finish()
}

// run runs one pump of Relay; its error fails the pair.
func (s *pairState) run(pump func() (int64, error), toUpstream bool) int64 {
	n, err := pump()
	if err != nil {
		s.fail(fmt.Errorf("relay %s: %w", direction(toUpstream), err))
	}
	return n
}

// Splicer moves one direction's bytes, src to dst, for a caller that frames
// them: it reads what must be read into the caller's buffer (Read), and
// splices a given number of bytes (N) or everything to EOF (All) through a
// pipe it holds only while bytes move, as Splice does. One Splicer serves
// a direction for the life of its connection; it does not allocate per
// call.
type Splicer struct {
	srcRC, dstRC syscall.RawConn
	c            copier

	rbuf  ReadBuffer // of the Read in progress
	rn    int
	rerr  error
	read1 func(fd uintptr) bool
}

// ReadBuffer is the user-space room a Splicer reads into. Space returns
// where the next read goes (taking memory if it holds none) and is called
// before every attempt; Unused is called when an attempt found nothing, so
// that a buffer holding no bytes can be given back while the connection
// waits (an idle connection then holds no buffer).
type ReadBuffer interface {
	Space() []byte
	Unused()
}

// NewSplicer returns a Splicer from src to dst.
func NewSplicer(dst, src *net.TCPConn) (*Splicer, error) {
	srcRC, err := src.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw source connection: %w", err)
	}
	dstRC, err := dst.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw destination connection: %w", err)
	}
	s := &Splicer{srcRC: srcRC, dstRC: dstRC}
	s.c.fill, s.c.drain = s.c.fillPipe, s.c.drainPipe
	s.read1 = s.readOnce
	return s, nil
}

// All splices src to dst until src's EOF, and returns the bytes it wrote.
func (s *Splicer) All() (int64, error) {
	s.c.bounded = false
	return s.c.move(s.dstRC, s.srcRC)
}

// N splices exactly n bytes from src to dst; io.ErrUnexpectedEOF if src
// ends first.
func (s *Splicer) N(n int64) (int64, error) {
	s.c.bounded, s.c.limit = true, n
	w, err := s.c.move(s.dstRC, s.srcRC)
	if err == nil && s.c.eof {
		err = io.ErrUnexpectedEOF
	}
	return w, err
}

// Read reads what src has (at least one byte) into b's space, waiting for
// it to be readable (through the netpoller, holding no buffer: see
// ReadBuffer). At src's EOF it returns 0, io.EOF. The connection's read
// deadline applies.
func (s *Splicer) Read(b ReadBuffer) (int, error) {
	s.rbuf, s.rn, s.rerr = b, 0, nil
	err := s.srcRC.Read(s.read1)
	s.rbuf = nil
	if err != nil {
		return 0, err
	}
	return s.rn, s.rerr
}

func (s *Splicer) readOnce(fd uintptr) bool {
	for {
		n, err := unix.Read(int(fd), s.rbuf.Space())
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			s.rbuf.Unused()
			return false
		case err != nil:
			s.rerr = fmt.Errorf("read: %w", err)
		case n == 0:
			s.rerr = io.EOF
		default:
			s.rn = n
		}
		return true
	}
}

package relay

import (
	"errors"
	"fmt"
	"time"

	"github.com/egressfw/egressfw/internal/tproxy"
	"golang.org/x/sys/unix"
)

// pair is one proxied connection: fd[0] the client's socket, fd[1]
// upstream's. dir[0] moves client -> upstream, dir[1] upstream -> client,
// so fd[i] is the source of dir[i] and the destination of dir[1-i].
type pair struct {
	fd     [2]int
	dir    [2]direction
	idle   time.Duration
	prefix int64
	done   Done
	over   bool // ended (done is queued)

	slot     int       // index in loop.pairs
	lastMove time.Time // when the loop last moved a byte
	kernel   uint64    // the kernel's byte counters at the idle baseline
	baseline bool      // kernel holds a baseline taken in this silence
}

// direction is one way of a pair. srcReady and dstReady are the edges
// epoll reported and no EAGAIN has cleared since.
type direction struct {
	pr, pw   int // the pipe, while hasPipe (tproxy.GetPipe)
	hasPipe  bool
	inPipe   int
	srcReady bool
	dstReady bool
	eof      bool // the source reached EOF
	ended    bool // and everything was written: the destination was shut down
	n        int64
}

// maxSplice is what one splice(2) from a socket asks for; the pipe's
// capacity bounds what it moves.
const maxSplice = 1 << 20

const spliceFlags = unix.SPLICE_F_NONBLOCK | unix.SPLICE_F_MOVE

var errNoProgress = errors.New("splice moved no bytes")

func sideName(side int) string {
	if side == 0 {
		return "client"
	}
	return "upstream"
}

func dirName(d int) string {
	if d == 0 {
		return "client to upstream"
	}
	return "upstream to client"
}

// event records what epoll reported for one of p's sockets and moves what
// can move.
func (p *pair) event(l *loop, fd int32, events uint32) {
	side := 0
	if int(fd) == p.fd[1] {
		side = 1
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.dir[side].srcReady = true
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.dir[1-side].dstReady = true
	}
	for d := range p.dir {
		if err := p.pump(l, d); err != nil {
			p.fail(l, fmt.Errorf("splice %s: %w", dirName(d), err))
			return
		}
	}
	if p.dir[0].ended && p.dir[1].ended {
		p.end(l)
	}
}

// pump moves direction d's bytes until its source or destination would
// block, or the source ended.
func (p *pair) pump(l *loop, d int) error {
	x := &p.dir[d]
	src, dst := p.fd[d], p.fd[1-d]
	for !x.ended {
		if x.inPipe > 0 {
			if !x.dstReady {
				return nil
			}
			n, err := unix.Splice(x.pr, nil, dst, nil, x.inPipe, spliceFlags)
			switch {
			case n > 0:
				x.inPipe -= int(n)
				x.n += n
				p.lastMove = l.now
			case err == unix.EAGAIN:
				x.dstReady = false
				return nil
			case err == unix.EINTR:
			case err == nil:
				return errNoProgress
			default:
				return fmt.Errorf("splice to socket: %w", err)
			}
			continue
		}
		if x.eof {
			x.release()
			x.ended = true
			// The other direction still runs: tell the peer we are done
			// writing. If it already ended, the close that follows sends
			// the same FIN.
			if !p.dir[1-d].ended {
				_ = unix.Shutdown(dst, unix.SHUT_WR)
			}
			return nil
		}
		if !x.srcReady {
			x.release()
			return nil
		}
		if !x.hasPipe {
			r, w, err := tproxy.GetPipe()
			if err != nil {
				return err
			}
			x.pr, x.pw, x.hasPipe = r, w, true
		}
		n, err := unix.Splice(src, nil, x.pw, nil, maxSplice, spliceFlags)
		switch {
		case n > 0:
			x.inPipe = int(n)
			p.lastMove = l.now
		case err == unix.EAGAIN:
			x.srcReady = false
		case err == unix.EINTR:
		case err == nil:
			x.eof = true
		default:
			return fmt.Errorf("splice from socket: %w", err)
		}
	}
	return nil
}

// release gives the direction's pipe back, if it holds one.
func (x *direction) release() {
	if x.hasPipe {
		tproxy.PutPipe(x.pr, x.pw, x.inPipe == 0)
		x.hasPipe, x.inPipe = false, 0
	}
}

// end closes a pair whose directions both ended with EOF.
func (p *pair) end(l *loop) {
	l.remove(p)
	_ = unix.Close(p.fd[0])
	_ = unix.Close(p.fd[1])
	p.finish(l, nil)
}

// fail resets both sockets, so that both peers learn the proxied
// connection failed, and ends the pair with err.
func (p *pair) fail(l *loop, err error) {
	l.remove(p)
	abortFd(p.fd[0])
	abortFd(p.fd[1])
	p.finish(l, err)
}

func (p *pair) finish(l *loop, err error) {
	p.over = true
	p.dir[0].release()
	p.dir[1].release()
	l.ended = append(l.ended, ended{p: p, up: p.prefix + p.dir[0].n, down: p.dir[1].n, err: err})
}

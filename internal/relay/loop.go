package relay

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// loop is one event loop: an epoll instance, the pairs registered with it,
// and a goroutine (run) that moves their bytes. The goroutine does not
// block in epoll_wait(2): the epoll descriptor is itself registered with
// the Go runtime's poller, and the loop parks there (holding no thread)
// until the epoll instance has events, then takes them all with
// non-blocking waits. A loop is woken once per batch of events.
type loop struct {
	ep, wake int // epoll and the eventfd that interrupts its wait (Close, a failed registration)
	epf      *os.File
	eprc     syscall.RawConn

	mu       sync.Mutex
	incoming []*pair // added, not yet taken by the loop
	spare    []*pair // the other buffer of incoming
	// regFailed are added pairs a socket of which could not be registered.
	regFailed []regFailure
	stopping  bool

	byFd  map[int32]*pair
	pairs []*pair // for the idle scan; pair.slot is the index
	scan  time.Duration
	now   time.Time

	ended    []ended // pairs that ended during this batch, for the finisher
	finish   finisher
	finished chan struct{} // closed when run returns
}

type regFailure struct {
	p   *pair
	err error
}

type ended struct {
	p        *pair
	up, down int64
	err      error
}

// maxScan is the longest wait between two idle scans.
const maxScan = time.Second

func newLoop() (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err == nil {
		err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)})
	}
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	l := &loop{ep: ep, wake: wake, byFd: map[int32]*pair{}, scan: maxScan, finished: make(chan struct{})}
	// Non-blocking, so that os.NewFile registers it with the runtime's
	// poller.
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll non-blocking: %w", err)
	}
	l.epf = os.NewFile(uintptr(ep), "relay-epoll")
	if l.eprc, err = l.epf.SyscallConn(); err != nil {
		l.epf.Close()
		unix.Close(wake)
		return nil, fmt.Errorf("poll epoll: %w", err)
	}
	l.finish.init()
	return l, nil
}

// add queues p for the loop and registers its sockets with the loop's
// epoll: their first events (a fresh socket is writable) wake the loop,
// which takes the queue before it looks at events. If a registration
// fails, the loop is woken to fail the pair.
func (l *loop) add(p *pair) {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		abortFd(p.fd[0])
		abortFd(p.fd[1])
		p.done(p.prefix, 0, net.ErrClosed)
		return
	}
	l.incoming = append(l.incoming, p)
	l.mu.Unlock()
	for side, fd := range p.fd {
		// Edge-triggered: the current state is reported at once.
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			l.mu.Lock()
			l.regFailed = append(l.regFailed, regFailure{p, fmt.Errorf("register %s socket: %w", sideName(side), err)})
			l.mu.Unlock()
			l.signal()
		}
	}
}

func (l *loop) signal() {
	one := [8]byte{1}
	_, _ = unix.Write(l.wake, one[:])
}

func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.signal()
	<-l.finished
	l.epf.Close()
	unix.Close(l.wake)
}

// run is the loop's goroutine.
func (l *loop) run() {
	defer close(l.finished)
	defer l.finish.close()
	events := make([]unix.EpollEvent, 256)
	nextScan := time.Now().Add(l.scan)
	deadline := time.Time{}
	for {
		if !deadline.Equal(nextScan) {
			deadline = nextScan
			_ = l.epf.SetReadDeadline(deadline)
		}
		var n int
		var werr error
		err := l.eprc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			return n != 0 || (werr != nil && werr != unix.EINTR)
		})
		if werr != nil || (err != nil && !errors.Is(err, os.ErrDeadlineExceeded)) {
			panic(fmt.Sprintf("relay: epoll_wait: %v", errors.Join(werr, err))) // EBADF/EFAULT/EINVAL: a bug
		}
		l.now = time.Now()
		if l.register() {
			l.shutdown()
			return
		}
		if next := l.now.Add(l.scan); next.Before(nextScan) {
			nextScan = next
		}
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(l.wake) {
				var b [8]byte
				_, _ = unix.Read(l.wake, b[:])
				continue
			}
			if p := l.byFd[ev.Fd]; p != nil {
				p.event(l, ev.Fd, ev.Events)
			}
		}
		n = 0
		if !l.now.Before(nextScan) {
			l.idleScan()
			nextScan = l.now.Add(l.scan)
		}
		if len(l.ended) > 0 {
			l.finish.put(l.ended)
			l.ended = nil
		}
	}
}

// register takes the queued pairs (add has registered their sockets); it
// fails those whose registration failed, and reports whether the loop is
// stopping.
func (l *loop) register() bool {
	l.mu.Lock()
	in, stopping := l.incoming, l.stopping
	l.incoming = l.spare[:0]
	l.spare = in
	failed := l.regFailed
	l.regFailed = nil
	l.mu.Unlock()
	for i, p := range in {
		in[i] = nil
		p.lastMove = l.now
		p.slot = len(l.pairs)
		l.pairs = append(l.pairs, p)
		l.byFd[int32(p.fd[0])], l.byFd[int32(p.fd[1])] = p, p
		if p.idle > 0 {
			l.scan = min(l.scan, max(p.idle/4, time.Millisecond))
		}
	}
	for _, f := range failed {
		if !f.p.over { // it may have ended on its own since
			f.p.fail(l, f.err)
		}
	}
	return stopping
}

// shutdown resets every pair the loop holds (Close).
func (l *loop) shutdown() {
	for len(l.pairs) > 0 {
		l.pairs[0].fail(l, net.ErrClosed)
	}
	l.finish.put(l.ended)
	l.ended = nil
}

// idleScan resets the pairs where nothing moved for their idle timeout.
// The kernel's counters are read only for pairs past half of it: bytes
// that were still being acknowledged then count as movement.
func (l *loop) idleScan() {
	for i := 0; i < len(l.pairs); i++ {
		p := l.pairs[i]
		if p.idle <= 0 {
			continue
		}
		silent := l.now.Sub(p.lastMove)
		switch {
		case silent < p.idle/2:
			p.baseline = false
		case !p.baseline:
			p.kernel, p.baseline = progress(p.fd), true
		case silent >= p.idle:
			if k := progress(p.fd); k != p.kernel {
				p.kernel, p.lastMove = k, l.now
				continue
			}
			p.fail(l, ErrIdle)
			i-- // p's slot now holds another pair
		}
	}
}

// progress sums the kernel's payload byte counters of both sockets.
func progress(fds [2]int) uint64 {
	var sum uint64
	for _, fd := range fds {
		if ti, err := unix.GetsockoptTCPInfo(fd, unix.SOL_TCP, unix.TCP_INFO); err == nil {
			sum += ti.Bytes_received + ti.Bytes_acked
		}
	}
	return sum
}

// remove forgets an ended pair (its sockets are closed by the caller, which
// takes them out of the epoll set).
func (l *loop) remove(p *pair) {
	delete(l.byFd, int32(p.fd[0]))
	delete(l.byFd, int32(p.fd[1]))
	last := len(l.pairs) - 1
	l.pairs[p.slot] = l.pairs[last]
	l.pairs[p.slot].slot = p.slot
	l.pairs[last] = nil
	l.pairs = l.pairs[:last]
}

// finisher calls the done functions of ended pairs on a goroutine of its
// own, so that a slow one (a log write to a stalled journal) holds up no
// pair's bytes. It is woken once per batch of the loop, not per pair.
type finisher struct {
	mu      sync.Mutex
	pending []ended
	closed  bool
	kick    chan struct{}
	exited  chan struct{}
}

func (f *finisher) init() {
	f.kick, f.exited = make(chan struct{}, 1), make(chan struct{})
	go f.run()
}

func (f *finisher) put(es []ended) {
	f.mu.Lock()
	f.pending = append(f.pending, es...)
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *finisher) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
	<-f.exited
}

func (f *finisher) run() {
	defer close(f.exited)
	var batch []ended
	for range f.kick {
		f.mu.Lock()
		batch, f.pending = f.pending, batch[:0]
		closed := f.closed && len(batch) == 0
		f.mu.Unlock()
		for i, e := range batch {
			e.p.done(e.up, e.down, e.err)
			batch[i] = ended{}
		}
		if closed {
			return
		}
		if len(batch) > 0 {
			// More may have come while these ran.
			select {
			case f.kick <- struct{}{}:
			default:
			}
		}
	}
}

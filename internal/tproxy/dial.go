package tproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Default timings of a Dialer whose fields are left zero.
const (
	DefaultDialTimeout   = 10 * time.Second
	DefaultFallbackDelay = 250 * time.Millisecond
)

// MaxAttempts is the most addresses one DialAny tries, whatever it is
// given: a name with hundreds of addresses cannot make one connection send
// hundreds of SYNs. Callers bound the list further (the daemon to
// listener.max_connect_attempts).
const MaxAttempts = 16

// Classes of a failed connection attempt; test with errors.Is on an
// *AttemptError or on the *DialError that carries it.
var (
	// ErrRefused means the peer answered with a RST (nothing listening, or a
	// reject rule with tcp reset).
	ErrRefused = errors.New("connection refused")
	// ErrTimeout means the attempt got no answer within Dialer.Timeout.
	ErrTimeout = errors.New("connect timeout")
	// ErrUnreachable means no route, an ICMP unreachable/prohibited answer or
	// a local firewall drop.
	ErrUnreachable = errors.New("destination unreachable")
	// ErrNoAddrs is returned when DialAny is given no address.
	ErrNoAddrs = errors.New("no addresses to dial")
)

// Dialer connects to upstream servers by IP address only; it never resolves
// names. The zero value dials without a mark, with DefaultDialTimeout per
// attempt and DefaultFallbackDelay between attempts.
type Dialer struct {
	// Mark is set as SO_MARK on every socket so that egressfw's own nftables
	// rules do not intercept its upstream connections. 0 leaves the mark
	// unset. Setting it needs CAP_NET_ADMIN.
	Mark uint32
	// Timeout bounds each connection attempt (not the whole DialAny).
	Timeout time.Duration
	// FallbackDelay is how long an attempt runs alone before the next
	// address is tried in parallel. A failure starts the next one at once.
	FallbackDelay time.Duration

	markOnce sync.Once
	markCtl  func(network, address string, c syscall.RawConn) error
}

// AttemptError is one failed connection attempt of DialAny.
type AttemptError struct {
	Addr netip.AddrPort
	// Class is ErrRefused, ErrTimeout, ErrUnreachable or nil if the cause
	// fits none of them.
	Class error
	// Err is the underlying error.
	Err error
}

func (e *AttemptError) Error() string {
	if e.Class == nil {
		return fmt.Sprintf("dial %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("dial %s: %v (%v)", e.Addr, e.Class, e.Err)
}

// Unwrap exposes both the class and the underlying error to errors.Is/As.
func (e *AttemptError) Unwrap() []error {
	if e.Class == nil {
		return []error{e.Err}
	}
	return []error{e.Class, e.Err}
}

// DialError is returned by DialAny when every attempt failed. errors.Is on it
// matches the class of any attempt.
type DialError struct {
	// Attempts holds one entry per address tried, in the order of the
	// addresses passed to DialAny.
	Attempts []*AttemptError
}

func (e *DialError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = a.Error()
	}
	return "all connection attempts failed: " + strings.Join(parts, "; ")
}

// Unwrap exposes every attempt to errors.Is/As.
func (e *DialError) Unwrap() []error {
	errs := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		errs[i] = a
	}
	return errs
}

type dialResult struct {
	idx  int
	conn *net.TCPConn
	err  error
}

// DialAny connects to the first address of addrs that answers, in
// happy-eyeballs style: addrs[0] is tried at once, each further address after
// FallbackDelay or as soon as an earlier attempt fails, and the first success
// wins while the other attempts are cancelled and their connections closed.
// The order is the caller's (put the original destination first); only the
// first MaxAttempts addresses are tried. It returns the connection and the
// address it reached; if all attempts fail the error is a *DialError, and
// if ctx ends first it is ctx's error.
func (d *Dialer) DialAny(ctx context.Context, addrs []netip.AddrPort) (*net.TCPConn, netip.AddrPort, error) {
	addrs = addrs[:min(len(addrs), MaxAttempts)]
	switch len(addrs) {
	case 0:
		return nil, netip.AddrPort{}, ErrNoAddrs
	case 1:
		// The common case needs no race: dial on the caller's goroutine,
		// without the goroutine, channel and timer of the fallback.
		c, err := d.dialOne(ctx, addrs[0])
		if err == nil {
			return c, addrs[0], nil
		}
		if err := ctxErr(ctx); err != nil {
			return nil, netip.AddrPort{}, fmt.Errorf("dial %v: %w", addrs, err)
		}
		return nil, netip.AddrPort{}, &DialError{Attempts: []*AttemptError{classify(addrs[0], err)}}
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan dialResult, len(addrs)) // attempts never block on send
	next, pending := 0, 0
	start := func() {
		i := next
		next++
		pending++
		go func() {
			c, err := d.dialOne(actx, addrs[i])
			results <- dialResult{i, c, err}
		}()
	}
	failed := make([]*AttemptError, len(addrs))
	start()
	timer := time.NewTimer(d.fallbackDelay())
	defer timer.Stop()
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				cancel()
				drainAttempts(results, pending)
				return r.conn, addrs[r.idx], nil
			}
			failed[r.idx] = classify(addrs[r.idx], r.err)
			if next < len(addrs) && ctxErr(ctx) == nil {
				start()
				timer.Reset(d.fallbackDelay())
			}
		case <-timer.C:
			if next < len(addrs) {
				start()
				timer.Reset(d.fallbackDelay())
			}
		case <-ctx.Done():
			cancel()
			drainAttempts(results, pending)
			return nil, netip.AddrPort{}, fmt.Errorf("dial %v: %w", addrs, ctx.Err())
		}
	}
	if err := ctxErr(ctx); err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("dial %v: %w", addrs, err)
	}
	de := &DialError{}
	for _, f := range failed {
		if f != nil {
			de.Attempts = append(de.Attempts, f)
		}
	}
	return nil, netip.AddrPort{}, de
}

// ctxErr is ctx.Err, but also reports a deadline that has passed before the
// context's timer marked it done: connect(2) uses the deadline directly and
// can fail first.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// drainAttempts waits for n cancelled attempts and closes any that connected
// anyway. Cancellation interrupts connect(2) at once, so this is short.
func drainAttempts(results <-chan dialResult, n int) {
	for ; n > 0; n-- {
		if r := <-results; r.conn != nil {
			r.conn.Close()
		}
	}
}

// markControl is MarkControl(d.Mark), made once per Dialer.
func (d *Dialer) markControl() func(network, address string, c syscall.RawConn) error {
	d.markOnce.Do(func() { d.markCtl = MarkControl(d.Mark) })
	return d.markCtl
}

func (d *Dialer) fallbackDelay() time.Duration {
	if d.FallbackDelay > 0 {
		return d.FallbackDelay
	}
	return DefaultFallbackDelay
}

// dialOne makes a single marked connection attempt to an IP address.
func (d *Dialer) dialOne(ctx context.Context, addr netip.AddrPort) (*net.TCPConn, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.IsValid() || addr.Addr().IsUnspecified() || addr.Port() == 0 {
		return nil, fmt.Errorf("invalid upstream address %v", addr)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	// No TCP keep-alive: the splice's idle timeout (always set) closes a
	// silent pair, and the four setsockopt(2) calls per socket are a
	// measurable share of a short connection's cost.
	nd := net.Dialer{Timeout: timeout, KeepAlive: -1}
	if d.Mark != 0 {
		nd.Control = d.markControl()
	}
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6"
	}
	// DialContext with the literal, not DialTCP with a zero local
	// AddrPort: the latter binds to the wildcard first, one more system
	// call per connection for the port the kernel picks anyway.
	c, err := nd.DialContext(ctx, network, addr.String())
	if err != nil {
		var se *sockoptError
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// MarkControl returns a net.Dialer (or net.ListenConfig) Control function
// that sets SO_MARK to mark on each socket before it connects, so that
// egressfw's own nftables rules let it through (the bypass mark); its
// error names the option and the address. It needs CAP_NET_ADMIN.
// The option is described once here and the address formatted only on
// failure: the hook runs for every upstream connection.
func MarkControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	opts := []sockopt{{fmt.Sprintf("SO_MARK=%#x", mark), unix.SOL_SOCKET, unix.SO_MARK, int(mark)}}
	return func(_, address string, rc syscall.RawConn) error {
		return setSockopts(rc, "socket to ", address, opts)
	}
}

// classify wraps a failed attempt's error with its class.
func classify(addr netip.AddrPort, err error) *AttemptError {
	ae := &AttemptError{Addr: addr, Err: err}
	var ne net.Error
	var se *sockoptError
	switch {
	case errors.As(err, &se):
		// Our own setup failed; not a property of the destination.
	case errors.Is(err, unix.ECONNREFUSED):
		ae.Class = ErrRefused
	case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		ae.Class = ErrTimeout
	case errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH),
		errors.Is(err, unix.EHOSTDOWN), errors.Is(err, unix.ENETDOWN),
		errors.Is(err, unix.EADDRNOTAVAIL), errors.Is(err, unix.EPERM),
		errors.Is(err, unix.EACCES):
		ae.Class = ErrUnreachable
	}
	return ae
}

// SortAddrs returns a copy of addrs ordered for DialAny: prefer itself (if
// present) first, then the other addresses of prefer's family, then the rest,
// each group in its original order.
func SortAddrs(addrs []netip.AddrPort, prefer netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(addrs))
	is4 := prefer.Addr().Unmap().Is4()
	var rest []netip.AddrPort
	for _, a := range addrs {
		if a == prefer {
			out = append(out, a)
		}
	}
	for _, a := range addrs {
		switch {
		case a == prefer:
		case a.Addr().Unmap().Is4() == is4:
			out = append(out, a)
		default:
			rest = append(rest, a)
		}
	}
	return append(out, rest...)
}

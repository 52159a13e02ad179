package tproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
	"golang.org/x/sys/unix"
)

// setupMarkGate rejects TCP to 127.0.0.1:17000 with a reset unless the
// socket carries the bypass mark, so only a correctly marked dial connects.
func setupMarkGate(t *testing.T, ns *netnstest.NS) {
	nft(t, ns, `
table inet egfwtest {
	chain out {
		type filter hook output priority filter; policy accept;
		tcp dport 17000 meta mark & 0x1000 != 0x1000 reject with tcp reset
	}
}`)
}

func TestDialMark(t *testing.T) {
	if !inNetns(t, setupMarkGate) {
		return
	}
	ln := listenLoopback(t, "127.0.0.1:17000")
	target := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:17000")}
	tests := []struct {
		name    string
		mark    uint32
		wantErr error
	}{
		{"unmarked is rejected", 0, ErrRefused},
		{"other mark is rejected", 0x2000, ErrRefused},
		{"bypass mark passes", bypassMark, nil},
		{"bypass mark among other bits passes", bypassMark | 0x4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Dialer{Mark: tc.mark, Timeout: 2 * time.Second}
			c, got, err := d.DialAny(context.Background(), target)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("DialAny with mark %#x: err = %v, want %v", tc.mark, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if got != target[0] {
				t.Errorf("dialed %v, want %v", got, target[0])
			}
			srv := accept(t, ln)
			defer srv.Close()
			checkSockopts(t, c)
			echoOnce(t, c, srv)
		})
	}
	t.Run("mark without CAP_NET_ADMIN", func(t *testing.T) {
		var err error
		withoutNetAdmin(t, func() {
			d := Dialer{Mark: bypassMark}
			_, err = d.dialOne(context.Background(), target[0])
		})
		want := "set SO_MARK=0x1000 on socket to 127.0.0.1:17000: operation not permitted (needs CAP_NET_ADMIN)"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
		if ae := classify(target[0], err); ae.Class != nil {
			t.Errorf("own setup failure classified as %v", ae.Class)
		}
	})
}

func listenLoopback(t testing.TB, addr string) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func setupDialAny(t *testing.T, ns *netnstest.NS) { addDummy(t, ns) }

func TestDialAny(t *testing.T) {
	if !inNetns(t, setupDialAny) {
		return
	}
	open := listenLoopback(t, "127.0.0.1:18000")
	open6 := listenLoopback(t, "[::1]:18000")
	var (
		ok        = netip.MustParseAddrPort("127.0.0.1:18000")
		ok6       = netip.MustParseAddrPort("[::1]:18000")
		refused   = netip.MustParseAddrPort("127.0.0.1:18001")
		blackhole = netip.MustParseAddrPort("192.0.2.99:443")
		noRoute   = netip.MustParseAddrPort("198.51.100.1:443")
		noRoute6  = netip.MustParseAddrPort("[2001:db8:ffff::1]:443")
	)
	const attempt = 400 * time.Millisecond
	tests := []struct {
		name       string
		addrs      []netip.AddrPort
		delay      time.Duration
		want       netip.AddrPort
		wantErrs   []error // per attempt, in address order
		minElapsed time.Duration
		maxElapsed time.Duration
	}{
		{"first wins", []netip.AddrPort{ok, refused}, time.Second, ok, nil, 0, 500 * time.Millisecond},
		{"refused falls back at once", []netip.AddrPort{refused, ok6}, 2 * time.Second, ok6, nil, 0, time.Second},
		{"black hole falls back after delay", []netip.AddrPort{blackhole, ok}, 150 * time.Millisecond, ok,
			nil, 150 * time.Millisecond, 150*time.Millisecond + time.Second},
		{"all fail with typed errors", []netip.AddrPort{refused, blackhole, noRoute, noRoute6}, 50 * time.Millisecond,
			netip.AddrPort{}, []error{ErrRefused, ErrTimeout, ErrUnreachable, ErrUnreachable}, attempt, attempt + time.Second},
		// One address is dialed on the caller's goroutine, without the
		// fallback's race.
		{"single address connects", []netip.AddrPort{ok6}, 0, ok6, nil, 0, 500 * time.Millisecond},
		{"single black hole times out", []netip.AddrPort{blackhole}, 0, netip.AddrPort{}, []error{ErrTimeout},
			attempt, attempt + 500*time.Millisecond},
		{"single refused", []netip.AddrPort{refused}, 0, netip.AddrPort{}, []error{ErrRefused}, 0, 500 * time.Millisecond},
		{"single no route", []netip.AddrPort{noRoute}, 0, netip.AddrPort{}, []error{ErrUnreachable}, 0, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Dialer{Timeout: attempt, FallbackDelay: tc.delay}
			start := time.Now()
			c, got, err := d.DialAny(context.Background(), tc.addrs)
			elapsed := time.Since(start)
			if elapsed < tc.minElapsed || elapsed > tc.maxElapsed {
				t.Errorf("took %v, want within [%v, %v]", elapsed, tc.minElapsed, tc.maxElapsed)
			}
			if tc.wantErrs != nil {
				checkDialError(t, err, tc.addrs, tc.wantErrs)
				return
			}
			if err != nil {
				t.Fatalf("DialAny: %v", err)
			}
			defer c.Close()
			if got != tc.want {
				t.Errorf("dialed %v, want %v", got, tc.want)
			}
			if ra := c.RemoteAddr().(*net.TCPAddr).AddrPort(); ra != tc.want {
				t.Errorf("connection goes to %v, want %v", ra, tc.want)
			}
			ln := open
			if tc.want.Addr().Is6() {
				ln = open6
			}
			srv := accept(t, ln)
			defer srv.Close()
			checkSockopts(t, c)
			echoOnce(t, c, srv)
		})
	}
	t.Run("losers are closed", func(t *testing.T) { checkLosersClosed(t, open, open6) })
	t.Run("at most MaxAttempts of 200 refusing addresses", func(t *testing.T) {
		var many []netip.AddrPort
		for i := range 200 {
			many = append(many, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1 + byte(i/250), 1 + byte(i%250)}), 18001))
		}
		d := Dialer{Timeout: attempt, FallbackDelay: time.Second}
		_, _, err := d.DialAny(context.Background(), many)
		want := make([]error, MaxAttempts)
		for i := range want {
			want[i] = ErrRefused
		}
		checkDialError(t, err, many, want)
	})
	t.Run("no addresses", func(t *testing.T) {
		if _, _, err := (&Dialer{}).DialAny(context.Background(), nil); !errors.Is(err, ErrNoAddrs) {
			t.Fatalf("err = %v, want ErrNoAddrs", err)
		}
	})
	// A lone address is dialed on the caller's goroutine: the caller's
	// deadline or cancellation must still end it at once.
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"caller's deadline bounds a single attempt", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 150*time.Millisecond)
		}, context.DeadlineExceeded},
		{"caller cancels a single attempt", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			d := Dialer{Timeout: 5 * time.Second}
			start := time.Now()
			_, _, err := d.DialAny(ctx, []netip.AddrPort{blackhole})
			if elapsed := time.Since(start); !errors.Is(err, tc.want) || elapsed > time.Second {
				t.Fatalf("err = %v after %v, want %v within a second", err, elapsed, tc.want)
			}
		})
	}
	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		d := Dialer{Timeout: 5 * time.Second}
		_, _, err := d.DialAny(ctx, []netip.AddrPort{blackhole, blackhole})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
}

func checkDialError(t *testing.T, err error, addrs []netip.AddrPort, want []error) {
	t.Helper()
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DialError", err)
	}
	if len(de.Attempts) != len(want) {
		t.Fatalf("%d attempts reported, want %d: %v", len(de.Attempts), len(want), err)
	}
	for i, a := range de.Attempts {
		if a.Addr != addrs[i] || a.Class != want[i] || !errors.Is(err, want[i]) {
			t.Errorf("attempt %d = %v (class %v), want %v class %v", i, a, a.Class, addrs[i], want[i])
		}
		if !strings.Contains(err.Error(), addrs[i].String()) {
			t.Errorf("error text lacks %v: %v", addrs[i], err)
		}
	}
}

// checkLosersClosed races two reachable addresses with no fallback delay to
// speak of; whichever attempt loses must not leave an open connection.
func checkLosersClosed(t *testing.T, ln4, ln6 *net.TCPListener) {
	d := Dialer{Timeout: time.Second, FallbackDelay: time.Nanosecond}
	c, got, err := d.DialAny(context.Background(), []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:18000"), netip.MustParseAddrPort("[::1]:18000")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	loser := ln6
	if got.Addr().Is6() {
		loser = ln4
	}
	_ = loser.SetDeadline(time.Now().Add(200 * time.Millisecond))
	lc, err := loser.Accept()
	if err != nil {
		return // the losing connect was cancelled before it completed
	}
	defer lc.Close()
	_ = lc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := lc.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("losing connection still open: read %d, %v", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSortAddrs(t *testing.T) {
	p := netip.MustParseAddrPort
	a4, b4, c4 := p("192.0.2.1:443"), p("192.0.2.2:443"), p("192.0.2.3:443")
	a6, b6 := p("[2001:db8::1]:443"), p("[2001:db8::2]:443")
	tests := []struct {
		name   string
		in     []netip.AddrPort
		prefer netip.AddrPort
		want   []netip.AddrPort
	}{
		{"original first then same family", []netip.AddrPort{a6, a4, b6, b4, c4}, b4, []netip.AddrPort{b4, a4, c4, a6, b6}},
		{"ipv6 original", []netip.AddrPort{a4, a6, b4, b6}, b6, []netip.AddrPort{b6, a6, a4, b4}},
		{"original absent keeps family order", []netip.AddrPort{a6, b4, a4}, c4, []netip.AddrPort{b4, a4, a6}},
		{"empty", nil, a4, []netip.AddrPort{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SortAddrs(tc.in, tc.prefer); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SortAddrs = %v, want %v", got, tc.want)
			}
		})
	}
}

// checkSockopts asserts the options every proxied socket carries: no TCP
// keep-alive (the idle timeout covers dead peers, and each keep-alive
// setting is a system call per connection) and TCP_NODELAY.
func checkSockopts(t *testing.T, c *net.TCPConn) {
	t.Helper()
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 0},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	} {
		got, gerr := sockoptInt(t, c, o.level, o.opt)
		if gerr != nil || got != o.want {
			t.Errorf("%s on %v = %d (%v), want %d", o.name, c.LocalAddr(), got, gerr, o.want)
		}
	}
}

// sockoptInt reads an integer socket option of a connection or listener.
func sockoptInt(t *testing.T, sc syscall.Conn, level, opt int) (int, error) {
	t.Helper()
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	return v, gerr
}

package tproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
	"golang.org/x/sys/unix"
)

const (
	tproxyPort = 15001
	bypassMark = 0x1000
)

// setupTPROXY programs the intended data path in ns: local TCP to documentation
// addresses on 80/443 gets mark 0x2000 unless it carries the bypass mark,
// policy routing loops marked packets to lo, and prerouting hands them to the
// transparent listeners on 127.0.0.1/::1 port tproxyPort.
func setupTPROXY(t *testing.T, ns *netnstest.NS) {
	addDummy(t, ns)
	nft(t, ns, `
table inet egfwtest {
	chain out {
		type route hook output priority mangle; policy accept;
		meta mark & 0x1000 == 0x1000 return
		ip daddr 192.0.2.0/24 tcp dport { 80, 443 } meta mark set meta mark | 0x2000
		ip6 daddr 2001:db8::/32 tcp dport { 80, 443 } meta mark set meta mark | 0x2000
	}
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		meta mark & 0x3000 == 0x2000 meta l4proto tcp tproxy ip to 127.0.0.1:15001
		meta mark & 0x3000 == 0x2000 meta l4proto tcp tproxy ip6 to [::1]:15001
	}
}`)
	for _, fam := range []string{"-4", "-6"} {
		ns.Run(t, "ip", fam, "rule", "add", "fwmark", "0x2000/0x3000", "lookup", "100")
	}
	ns.Run(t, "ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
	ns.Run(t, "ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100")
}

func TestTPROXY(t *testing.T) {
	if !inNetns(t, setupTPROXY) {
		return
	}
	listeners := map[bool]*net.TCPListener{} // keyed by "is IPv6"
	for _, a := range []string{"127.0.0.1", "::1"} {
		ln, err := Listen(context.Background(), netip.AddrPortFrom(netip.MustParseAddr(a), tproxyPort))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		if proto := listenerProto(t, ln); proto != unix.IPPROTO_TCP {
			t.Errorf("listener on %s has SO_PROTOCOL %d, want TCP (%d)", a, proto, unix.IPPROTO_TCP)
		}
		listeners[strings.Contains(a, ":")] = ln
	}
	tests := []struct {
		name string
		dst  string
	}{
		{"ipv4 port 80 via 127.0.0.1", "192.0.2.77:80"},
		{"ipv4 port 443 via 127.0.0.1", "192.0.2.200:443"},
		{"ipv6 port 443 via ::1", "[2001:db8::77]:443"},
		{"ipv6 port 80 via ::1", "[2001:db8::1:2]:80"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.MustParseAddrPort(tc.dst)
			client, err := net.DialTimeout("tcp", tc.dst, 3*time.Second)
			if err != nil {
				t.Fatalf("client dial %s: %v", tc.dst, err)
			}
			defer client.Close()
			srv := accept(t, listeners[dst.Addr().Is6()])
			defer srv.Close()
			checkSockopts(t, srv)
			if got := OriginalDst(srv); got != dst {
				t.Errorf("OriginalDst = %v, want %v", got, dst)
			}
			if got, err := OriginalDstNAT(srv); err == nil {
				t.Errorf("OriginalDstNAT without conntrack = %v, want error", got)
			}
			if got, want := srv.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("accepted peer = %s, want client %s", got, want)
			}
			echoOnce(t, client, srv)
		})
	}
	t.Run("bypass mark is not intercepted", func(t *testing.T) {
		d := Dialer{Mark: bypassMark, Timeout: 300 * time.Millisecond}
		_, _, err := d.DialAny(context.Background(), []netip.AddrPort{netip.MustParseAddrPort("192.0.2.77:80")})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("marked dial into the black hole: err = %v, want ErrTimeout", err)
		}
		ln := listeners[false]
		_ = ln.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if c, err := ln.Accept(); err == nil {
			c.Close()
			t.Fatal("listener accepted a connection that carried the bypass mark")
		}
	})
}

func accept(t *testing.T, ln *net.TCPListener) *net.TCPConn {
	t.Helper()
	if err := ln.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("accept on %v: %v", ln.Addr(), err)
	}
	return c
}

// echoOnce checks that bytes flow both ways between a and b.
func echoOnce(t *testing.T, a net.Conn, b net.Conn) {
	t.Helper()
	_ = a.SetDeadline(time.Now().Add(3 * time.Second))
	_ = b.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4)
	if _, err := a.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read ping: %q, %v", buf, err)
	}
	if _, err := b.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read pong: %q, %v", buf, err)
	}
}

func TestListenErrors(t *testing.T) {
	if !inNetns(t, nil) {
		return
	}
	busy, err := Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:15002"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	squat, err := net.Listen("tcp4", "0.0.0.0:15005") // a plain socket, as any user may open
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	tests := []struct {
		name    string
		addr    netip.AddrPort
		dropCap bool
		wantErr string
		wantIs  error
	}{
		{"invalid address", netip.AddrPort{}, false, "invalid address", nil},
		{"port in use", netip.MustParseAddrPort("127.0.0.1:15002"), false,
			"tproxy listen on 127.0.0.1:15002: port 15002 is held by another process (uid 0 listening on 127.0.0.1:15002); " +
				"only egressfw may listen on its listener ports: stop that process (ss -ltnpe 'sport = :15002' names it) " +
				"or move listener.port: address already in use", unix.EADDRINUSE},
		{"port held on the wildcard", netip.MustParseAddrPort("127.0.0.1:15005"), false,
			"port 15005 is held by another process (uid 0 listening on 0.0.0.0:15005)", unix.EADDRINUSE},
		{"ipv4 without CAP_NET_ADMIN", netip.MustParseAddrPort("127.0.0.1:15003"), true,
			"set IP_TRANSPARENT on 127.0.0.1:15003: operation not permitted (needs CAP_NET_ADMIN)", unix.EPERM},
		{"ipv6 without CAP_NET_ADMIN", netip.MustParseAddrPort("[::1]:15003"), true,
			"set IPV6_TRANSPARENT on [::1]:15003: operation not permitted (needs CAP_NET_ADMIN)", unix.EPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ln *net.TCPListener
			var err error
			listen := func() { ln, err = Listen(context.Background(), tc.addr) }
			if tc.dropCap {
				withoutNetAdmin(t, listen)
			} else {
				listen()
			}
			if err == nil {
				ln.Close()
				t.Fatalf("Listen(%v) succeeded, want error %q", tc.addr, tc.wantErr)
			}
			if err.Error() != tc.wantErr && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q, want %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.wantIs)
			}
		})
	}
}

// TestWildcardListenerIsTransparent: a forwarded tenant's listener is bound
// to the wildcard address and must be transparent like the loopback ones:
// the rules hand redirected connections only to transparent sockets.
func TestWildcardListenerIsTransparent(t *testing.T) {
	if !inNetns(t, nil) {
		return
	}
	for _, tc := range []struct {
		addr       string
		level, opt int
	}{
		{"0.0.0.0:15006", unix.SOL_IP, unix.IP_TRANSPARENT},
		{"[::]:15006", unix.SOL_IPV6, unix.IPV6_TRANSPARENT},
	} {
		ln, err := Listen(context.Background(), netip.MustParseAddrPort(tc.addr))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if v, err := sockoptInt(t, ln, tc.level, tc.opt); err != nil || v != 1 {
			t.Errorf("listener on %s: transparent = %d (%v), want 1", tc.addr, v, err)
		}
	}
}

// withoutNetAdmin runs fn on an OS thread whose effective capability set
// lacks CAP_NET_ADMIN and CAP_NET_RAW (capabilities are per thread), then restores it. If
// restoring fails the thread stays locked and dies with its goroutine.
func withoutNetAdmin(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		saved := data
		// The kernel accepts either capability for IP_TRANSPARENT and SO_MARK.
		data[0].Effective &^= 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		fn()
		if err := unix.Capset(&hdr, &saved[0]); err != nil {
			done <- err
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("drop CAP_NET_ADMIN: %v", err)
	}
}

func listenerProto(t *testing.T, ln *net.TCPListener) int {
	t.Helper()
	proto, err := sockoptInt(t, ln, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	return proto
}

package proxytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/tproxy"
)

// Kernel stands in for tproxy (it implements proxy.Kernel): plain sockets
// on the address asked for, on any free port, so a forwarded tenant's
// connection arrives on its listener's own port (REDIRECTed) and a local
// tenant's on any; the original destination of a connection is what the
// test set last.
type Kernel struct {
	orig atomic.Value // netip.AddrPort
	// NoNAT: conntrack has no NAT record of a redirected connection.
	NoNAT atomic.Bool
	// Fail, if set, refuses to listen where it returns an error.
	Fail func(netip.AddrPort) error

	mu     sync.Mutex
	opened []*net.TCPListener
	udp    []*net.UDPConn                      // DNS listeners' UDP sockets
	byAddr map[netip.AddrPort]*net.TCPListener // by the address asked for, the last one
	dns    map[netip.AddrPort]*net.UDPConn     // DNS listeners' UDP sockets, likewise
}

// SetOrig sets the original destination ("ip:port") of the connections
// accepted from now on.
func (k *Kernel) SetOrig(ap string) { k.orig.Store(netip.MustParseAddrPort(ap)) }

// Listen opens a plain listener on ap's address and a free port.
func (k *Kernel) Listen(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
	if k.Fail != nil {
		if err := k.Fail(ap); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ap.Addr(), 0).String())
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.opened = append(k.opened, ln.(*net.TCPListener))
	if k.byAddr == nil {
		k.byAddr = map[netip.AddrPort]*net.TCPListener{}
	}
	k.byAddr[ap] = ln.(*net.TCPListener)
	return ln.(*net.TCPListener), nil
}

// ListenDNS opens a plain UDP socket on ap's address and a free port, and
// a TCP listener on the same port (as a tenant's DNS listener has both).
func (k *Kernel) ListenDNS(ctx context.Context, ap netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	if k.Fail != nil {
		if err := k.Fail(ap); err != nil {
			return nil, nil, err
		}
	}
	var lc net.ListenConfig
	var err error
	for range 20 { // the free UDP port may be taken for TCP: try a few
		var pc net.PacketConn
		if pc, err = lc.ListenPacket(ctx, "udp", netip.AddrPortFrom(ap.Addr(), 0).String()); err != nil {
			return nil, nil, err
		}
		var ln net.Listener
		if ln, err = lc.Listen(ctx, "tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			continue
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		k.opened = append(k.opened, ln.(*net.TCPListener))
		k.udp = append(k.udp, pc.(*net.UDPConn))
		if k.dns == nil {
			k.dns = map[netip.AddrPort]*net.UDPConn{}
		}
		k.dns[ap] = pc.(*net.UDPConn)
		return pc.(*net.UDPConn), ln.(*net.TCPListener), nil
	}
	return nil, nil, err
}

// DNSAddr is where the DNS listener last opened for ap ("ip:port", the
// address the proxy asked for) listens, UDP and TCP, or "" when none was
// opened.
func (k *Kernel) DNSAddr(ap string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pc := k.dns[netip.MustParseAddrPort(ap)]; pc != nil {
		return pc.LocalAddr().String()
	}
	return ""
}

// Addr is where the listener last opened for ap ("ip:port", the address
// the proxy asked for) listens, or "" when it is closed or was never
// opened.
func (k *Kernel) Addr(ap string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	ln := k.byAddr[netip.MustParseAddrPort(ap)]
	if ln == nil || isClosed(ln) {
		return ""
	}
	return ln.Addr().String()
}

// isClosed reports whether ln was closed: a closed listener fails
// SetDeadline with ErrClosed.
func isClosed(ln *net.TCPListener) bool {
	return errors.Is(ln.SetDeadline(time.Time{}), net.ErrClosed)
}

// OriginalDst is the address SetOrig set.
func (k *Kernel) OriginalDst(*net.TCPConn) netip.AddrPort {
	ap, _ := k.orig.Load().(netip.AddrPort)
	return ap
}

// OriginalDstNAT is the address SetOrig set, or with NoNAT the error
// conntrack gives for a connection it has no NAT record of.
func (k *Kernel) OriginalDstNAT(c *net.TCPConn) (netip.AddrPort, error) {
	if k.NoNAT.Load() {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", syscall.ENOENT)
	}
	return k.OriginalDst(c), nil
}

// StillOpen counts the sockets Listen and ListenDNS opened that are not
// closed.
func (k *Kernel) StillOpen() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, ln := range k.opened {
		if !isClosed(ln) {
			n++
		}
	}
	for _, pc := range k.udp {
		if !errors.Is(pc.SetDeadline(time.Time{}), net.ErrClosed) {
			n++
		}
	}
	return n
}

// Net is the network behind the proxy (it implements proxy.Dialer): the
// public site 198.51.100.10 and 2001:db8::10 (HTTP on 80, HTTPS on 443,
// each answering "hello from HOST" and "tls hello from HOST"), and the
// internal services 10.20.0.10 (80, 443), 10.20.0.20 (443) and
// 169.254.169.254 (80), all one Counter, so a test can prove nothing
// internal was ever reached. An address with no route is refused, like a
// public host with nothing listening.
type Net struct {
	HTTP, TLS *httptest.Server
	Internal  *Counter

	routes map[netip.AddrPort]string
	dialed sync.Map // netip.AddrPort -> *atomic.Int64
}

// NewNet starts the servers of the test network; they close with t.
func NewNet(t testing.TB) *Net {
	n := &Net{routes: map[netip.AddrPort]string{}, Internal: NewCounter(t)}
	n.HTTP = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	}))
	t.Cleanup(n.HTTP.Close)
	n.TLS = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls hello from %s", r.Host)
	}))
	t.Cleanup(n.TLS.Close)
	for _, ap := range []string{"198.51.100.10:80", "[2001:db8::10]:80"} {
		n.Route(ap, n.HTTP.Listener.Addr().String())
	}
	n.Route("198.51.100.10:443", n.TLS.Listener.Addr().String())
	n.Route("[2001:db8::10]:443", n.TLS.Listener.Addr().String())
	for _, ap := range []string{"10.20.0.10:80", "10.20.0.10:443", "10.20.0.20:443", "169.254.169.254:80"} {
		n.Route(ap, n.Internal.Addr)
	}
	return n
}

// Route sends connections to from ("ip:port") to the loopback server at to.
// Routes are set before the first dial.
func (n *Net) Route(from, to string) { n.routes[netip.MustParseAddrPort(from)] = to }

// DialAny counts each address in turn and connects to the first one that
// has a route.
func (n *Net) DialAny(ctx context.Context, addrs []netip.AddrPort) (*net.TCPConn, netip.AddrPort, error) {
	for _, a := range addrs {
		c, _ := n.dialed.LoadOrStore(a, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		to, ok := n.routes[a]
		if !ok {
			continue
		}
		conn, _, err := (&tproxy.Dialer{}).DialAny(ctx, []netip.AddrPort{netip.MustParseAddrPort(to)})
		return conn, a, err
	}
	return nil, netip.AddrPort{}, fmt.Errorf("dial %v: %w", addrs, tproxy.ErrRefused)
}

// Dialed is how many times ap ("ip:port") was to be dialled.
func (n *Net) Dialed(ap string) int64 {
	if c, ok := n.dialed.Load(netip.MustParseAddrPort(ap)); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// Counter stands in for every internal service: it counts connections and
// answers nothing useful.
type Counter struct {
	Addr string
	Hits atomic.Int64
}

// NewCounter starts a Counter on a loopback port; it closes with t.
func NewCounter(t testing.TB) *Counter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := &Counter{Addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cs.Hits.Add(1)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\ninternal")
			c.Close()
		}
	}()
	return cs
}

// Logs collects JSON log lines; it is safe for concurrent use.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Logger returns a JSON logger writing to l.
func (l *Logs) Logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// Write appends p.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes returns a copy of everything written.
func (l *Logs) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// Lines returns the decoded "connection" log lines.
func (l *Logs) Lines() []map[string]any { return l.LinesOf("connection") }

// LinesOf returns the decoded log lines whose msg is msg ("request": the
// lines of refused later requests of HTTP connections).
func (l *Logs) LinesOf(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range bytes.Split(l.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Wait waits up to 5s for a connection line for which match is true and
// returns it; it fails t if none comes.
func (l *Logs) Wait(t testing.TB, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	return l.WaitOf(t, "connection", what, match)
}

// WaitOf is Wait for the lines whose msg is msg.
func (l *Logs) WaitOf(t testing.TB, msg, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range l.LinesOf(msg) {
			if match(m) {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line %s in:\n%s", what, l.Bytes())
	return nil
}

// WaitFields waits for a connection line whose fields contain want.
func (l *Logs) WaitFields(t testing.TB, want map[string]any) map[string]any {
	t.Helper()
	return l.Wait(t, fmt.Sprintf("with %v", want), func(m map[string]any) bool {
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				return false
			}
		}
		return true
	})
}

// Config is a config of three tenants for the test network, with the DNS
// server's address to fill in (%q): web (any public name, deny list
// *.blocked.example, wiki.example.com allowed internal on 443), strict
// (www.example.com only) and audit (report mode). The documentation ranges
// count as public; deny_detail is "full" so tests can read the reasons.
const Config = `
[dns]
servers = [%q]
min_ttl = "0s"
[listener]
peek_timeout = "300ms"
connect_timeout = "1s"
deny_detail = "full"
[policy]
public_cidrs = ["198.51.100.0/24", "2001:db8::/32"]
[[tenant]]
name = "web"
uids = [1001]
deny_domains = ["*.blocked.example"]
  [[tenant.allow_internal]]
  host = "wiki.example.com"
  ports = [443]
[[tenant]]
name = "strict"
uids = [1002]
allow_domains = ["www.example.com"]
[[tenant]]
name = "audit"
uids = [1003]
mode = "report"
`

var reqSeq atomic.Int32

// Request sends an HTTP request for host to the listener at addr, as if
// addressed to orig, and returns the connection's log line. The client
// binds a loopback address of its own, by which the line is found also
// when the connection is reset before connect() returns.
func Request(t testing.TB, k *Kernel, l *Logs, addr, orig, host string) map[string]any {
	t.Helper()
	k.SetOrig(orig)
	n := reqSeq.Add(1)
	src := netip.AddrFrom4([4]byte{127, byte(1 + n/250%250), byte(1 + n%250), byte(2 + rand.IntN(250))})
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	if c, err := d.Dial("tcp", addr); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
		_, _ = io.ReadAll(c) // a response, or a reset
		c.Close()
	}
	return l.Wait(t, "for the connection from "+src.String(), func(m map[string]any) bool {
		ap, err := netip.ParseAddrPort(fmt.Sprint(m["src"]))
		return err == nil && ap.Addr() == src
	})
}

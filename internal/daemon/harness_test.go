package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnstest"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// harness runs the data path in-process: real sockets, a real DNS server and
// real upstream servers on loopback. Two fakes replace the kernel: the
// original destination of a connection is whatever the test says
// (testKernel), and the dialer maps the "public" documentation addresses the
// policy validated onto loopback servers. Internal addresses map to a server that counts every
// connection, so a test can prove nothing internal was ever dialled.
type harness struct {
	t        *testing.T
	srv      *server
	dns      *dnstest.Server
	logs     *syncBuffer
	kernel   *testKernel
	routes   map[netip.AddrPort]string
	dialed   sync.Map // netip.AddrPort -> *atomic.Int64
	internal *counterServer
	http     *httptest.Server
	tls      *httptest.Server
	addrs    map[string][2]string // tenant -> listener addresses (v4, v6)
}

const harnessConfig = `
[dns]
servers = [%q]
min_ttl = "0s"
[listener]
peek_timeout = "300ms"
connect_timeout = "1s"
deny_detail = "full"  # the tests read the reasons; deny_test.go covers "minimal"
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

func newHarness(t *testing.T, extra string) *harness {
	t.Helper()
	h := &harness{t: t, logs: &syncBuffer{}, kernel: &testKernel{}, routes: map[netip.AddrPort]string{}, addrs: map[string][2]string{}}
	h.dns = dnstest.New(t)
	h.dns.Set("www.example.com", "198.51.100.10", "2001:db8::10")
	h.dns.Set("example.com", "198.51.100.10")
	h.dns.Set("bi-tool.example.com", "10.20.0.10")
	h.dns.Set("metadata.example.com", "169.254.169.254")
	h.dns.Set("mixed.example.com", "198.51.100.10", "10.20.0.10")
	h.dns.Set("wiki.example.com", "10.20.0.20")
	h.dns.Set("refused.example.com", "198.51.100.30")
	h.dns.Set("mapped.example.com", "::ffff:10.20.0.10")

	h.internal = newCounterServer(t)
	h.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.Host)
	}))
	t.Cleanup(h.http.Close)
	h.tls = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls hello from %s", r.Host)
	}))
	t.Cleanup(h.tls.Close)
	for _, ap := range []string{"198.51.100.10:80", "[2001:db8::10]:80"} {
		h.route(ap, h.http.Listener.Addr().String())
	}
	h.route("198.51.100.10:443", h.tls.Listener.Addr().String())
	h.route("[2001:db8::10]:443", h.tls.Listener.Addr().String())
	for _, ap := range []string{"10.20.0.10:80", "10.20.0.10:443", "10.20.0.20:443", "169.254.169.254:80"} {
		h.route(ap, h.internal.addr)
	}

	cfg, err := config.Parse([]byte(fmt.Sprintf(harnessConfig, h.dns.Addr)+extra), "harness")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(h.logs, nil))
	h.srv = newServer(log, newMetrics("test"), dialerFunc(h.dial), h.kernel)
	h.apply(cfg)
	t.Cleanup(func() {
		h.srv.closeAllListeners()
		if !h.srv.drain(5 * time.Second) {
			t.Error("connections still open 5s after the test")
		}
	})
	return h
}

// apply installs cfg as a reload would (without the kernel).
func (h *harness) apply(cfg *config.Config) {
	h.t.Helper()
	snap := snapshotFor(h.t, h.srv, cfg)
	h.srv.install(snap)
	if err := h.srv.openListeners(context.Background(), snap); err != nil {
		h.t.Fatal(err)
	}
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	for slot, pl := range h.srv.listeners {
		name := snap.tenants[slot].name
		h.addrs[name] = [2]string{pl.socks[0].Addr().String(), pl.socks[len(pl.socks)-1].Addr().String()}
	}
}

func (h *harness) route(from, to string) { h.routes[netip.MustParseAddrPort(from)] = to }

// dial maps validated addresses to loopback servers; an unmapped address is
// refused, like a public host with nothing listening.
func (h *harness) dial(ctx context.Context, addrs []netip.AddrPort) (*net.TCPConn, netip.AddrPort, error) {
	for _, a := range addrs {
		c, _ := h.dialed.LoadOrStore(a, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		to, ok := h.routes[a]
		if !ok {
			continue
		}
		conn, _, err := (&tproxy.Dialer{}).DialAny(ctx, []netip.AddrPort{netip.MustParseAddrPort(to)})
		return conn, a, err
	}
	return nil, netip.AddrPort{}, fmt.Errorf("dial %v: %w", addrs, tproxy.ErrRefused)
}

func (h *harness) dialCount(ap string) int64 {
	if c, ok := h.dialed.Load(netip.MustParseAddrPort(ap)); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// connect opens a client connection to tenant's listener as if it had been
// addressed to orig. v6 picks the ::1 listener.
func (h *harness) connect(tenant, orig string, v6 bool) net.Conn {
	h.t.Helper()
	h.kernel.setOrig(orig)
	addr := h.addrs[tenant][0]
	if v6 {
		addr = h.addrs[tenant][1]
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// refusedAtOnce connects to tenant's listener and reports whether the
// connection was reset straight away. The reset can beat the client's
// connect() to completion, so a dial error counts the same as a reset on
// the first read.
func (h *harness) refusedAtOnce(tenant, orig string) error {
	h.kernel.setOrig(orig)
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", h.addrs[tenant][0], 2*time.Second)
	if err == nil {
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "reset") || time.Since(t0) > 500*time.Millisecond {
		return fmt.Errorf("err %v after %v, want an immediate reset", err, time.Since(t0))
	}
	return nil
}

// httpGet sends a GET with host and returns the status line and body.
func (h *harness) httpGet(tenant, orig, host string) (status, body string) {
	h.t.Helper()
	c := h.connect(tenant, orig, strings.HasPrefix(orig, "["))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
	out, _ := io.ReadAll(c)
	c.Close()
	head, b, _ := strings.Cut(string(out), "\r\n\r\n")
	status, _, _ = strings.Cut(head, "\r\n")
	return status, b
}

// logLines returns the decoded "connection" log lines.
func (h *harness) logLines() []map[string]any {
	var out []map[string]any
	for _, line := range bytes.Split(h.logs.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == "connection" {
			out = append(out, m)
		}
	}
	return out
}

// waitLog waits for a connection log line whose fields contain want.
func (h *harness) waitLog(want map[string]any) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
	next:
		for _, m := range h.logLines() {
			for k, v := range want {
				if fmt.Sprint(m[k]) != fmt.Sprint(v) {
					continue next
				}
			}
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("no log line with %v in:\n%s", want, h.logs.Bytes())
	return nil
}

type dialerFunc func(ctx context.Context, addrs []netip.AddrPort) (*net.TCPConn, netip.AddrPort, error)

func (f dialerFunc) DialAny(ctx context.Context, addrs []netip.AddrPort) (*net.TCPConn, netip.AddrPort, error) {
	return f(ctx, addrs)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// counterServer stands in for every internal service: it counts connections
// and answers nothing useful.
type counterServer struct {
	addr string
	hits atomic.Int64
}

func newCounterServer(t *testing.T) *counterServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := &counterServer{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cs.hits.Add(1)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\ninternal")
			c.Close()
		}
	}()
	return cs
}

// testKernel stands in for tproxy: plain sockets on the address asked for,
// on any free port, so a forwarded tenant's connection arrives on its
// listener's own port (REDIRECTed) and a local tenant's on any; the
// original destination of the next connection is what the test set.
type testKernel struct {
	orig  atomic.Value // netip.AddrPort
	noNAT atomic.Bool  // conntrack has no NAT record of a redirected connection
	// fail, if set, refuses to listen where it returns an error.
	fail func(netip.AddrPort) error

	mu     sync.Mutex
	opened []*net.TCPListener
}

func (k *testKernel) setOrig(ap string) { k.orig.Store(netip.MustParseAddrPort(ap)) }

func (k *testKernel) Listen(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
	if k.fail != nil {
		if err := k.fail(ap); err != nil {
			return nil, err
		}
	}
	ln, err := listenEphemeral(ctx, ap)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.opened = append(k.opened, ln)
	k.mu.Unlock()
	return ln, nil
}

func (k *testKernel) OriginalDst(*net.TCPConn) netip.AddrPort {
	ap, _ := k.orig.Load().(netip.AddrPort)
	return ap
}

func (k *testKernel) OriginalDstNAT(c *net.TCPConn) (netip.AddrPort, error) {
	if k.noNAT.Load() {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", syscall.ENOENT)
	}
	return k.OriginalDst(c), nil
}

// stillOpen counts the sockets Listen opened that are not closed.
func (k *testKernel) stillOpen() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, ln := range k.opened {
		// A closed listener fails SetDeadline with ErrClosed.
		if err := ln.SetDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
			n++
		}
	}
	return n
}

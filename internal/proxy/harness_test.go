package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnstest"
	"github.com/egressfw/egressfw/internal/proxy/proxytest"
	"github.com/prometheus/client_golang/prometheus"
)

// harness runs the data path in-process: real sockets, a real DNS server and
// real upstream servers on loopback (package proxytest). Two fakes replace
// the kernel: the original destination of a connection is whatever the test
// says (proxytest.Kernel), and the dialer maps the "public" documentation
// addresses the policy validated onto loopback servers (proxytest.Net).
// Internal addresses map to a server that counts every connection, so a
// test can prove nothing internal was ever dialled.
type harness struct {
	t        *testing.T
	srv      *Proxy
	dns      *dnstest.Server
	logs     *proxytest.Logs
	kernel   *proxytest.Kernel
	net      *proxytest.Net
	internal *proxytest.Counter
	reg      *prometheus.Registry // the proxy's metrics
	addrs    map[string][2]string // tenant -> listener addresses (v4, v6)
}

// harnessConfig is proxytest.Config: tenants web, strict and audit.
const harnessConfig = proxytest.Config

func newHarness(t *testing.T, extra string) *harness {
	t.Helper()
	h := &harness{t: t, logs: &proxytest.Logs{}, kernel: &proxytest.Kernel{}, addrs: map[string][2]string{}}
	h.dns = dnstest.New(t)
	h.dns.Set("www.example.com", "198.51.100.10", "2001:db8::10")
	h.dns.Set("example.com", "198.51.100.10")
	h.dns.Set("bi-tool.example.com", "10.20.0.10")
	h.dns.Set("metadata.example.com", "169.254.169.254")
	h.dns.Set("mixed.example.com", "198.51.100.10", "10.20.0.10")
	h.dns.Set("wiki.example.com", "10.20.0.20")
	h.dns.Set("refused.example.com", "198.51.100.30")
	h.dns.Set("mapped.example.com", "::ffff:10.20.0.10")

	h.net = proxytest.NewNet(t)
	h.internal = h.net.Internal

	cfg, err := config.Parse([]byte(fmt.Sprintf(harnessConfig, h.dns.Addr)+extra), "harness")
	if err != nil {
		t.Fatal(err)
	}
	h.reg = prometheus.NewRegistry()
	h.srv = New(Options{Log: h.logs.Logger(), Metrics: h.reg, Dialer: h.net, Kernel: h.kernel})
	h.apply(cfg)
	t.Cleanup(func() {
		h.srv.Close()
		if !h.srv.Drain(5 * time.Second) {
			t.Error("connections still open 5s after the test")
		}
	})
	return h
}

// apply makes cfg current in production's order (without the rules):
// listeners first, then the snapshot, then the listeners of removed slots
// close.
func (h *harness) apply(cfg *config.Config) {
	h.t.Helper()
	snap := snapshotFor(h.t, h.srv, cfg)
	if err := h.srv.Listen(context.Background(), snap); err != nil {
		h.t.Fatal(err)
	}
	h.srv.Install(snap)
	h.srv.Prune()
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	for slot, pl := range h.srv.listeners {
		name := snap.tenants[slot].name
		h.addrs[name] = [2]string{pl.socks[0].Addr().String(), pl.socks[len(pl.socks)-1].Addr().String()}
	}
}

func (h *harness) dialCount(ap string) int64 { return h.net.Dialed(ap) }

// connect opens a client connection to tenant's listener as if it had been
// addressed to orig. v6 picks the ::1 listener.
func (h *harness) connect(tenant, orig string, v6 bool) net.Conn {
	h.t.Helper()
	h.kernel.SetOrig(orig)
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
	h.kernel.SetOrig(orig)
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
func (h *harness) logLines() []map[string]any { return h.logs.Lines() }

// waitLog waits for a connection log line whose fields contain want.
func (h *harness) waitLog(want map[string]any) map[string]any {
	h.t.Helper()
	return h.logs.WaitFields(h.t, want)
}

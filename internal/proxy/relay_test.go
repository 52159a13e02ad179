package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRelayHoldsThenReleasesCaps: a connection being relayed (the relay
// runs on its own goroutine) holds its tenant's slot and counts as active
// until it ends; then the slot is free again and the gauge is back to 0.
// A drain (after the listeners close, as on SIGTERM) waits for a relay in
// progress.
func TestRelayHoldsThenReleasesCaps(t *testing.T) {
	h := newHarness(t, "[limits]\nmax_connections_per_tenant = 1\n")
	active := func() float64 { return testutil.ToFloat64(h.srv.metrics.active.WithLabelValues("web")) }
	c := h.keepAlive("web")
	if got := active(); got != 1 {
		t.Errorf("active connections while relaying = %v, want 1", got)
	}
	if err := h.refusedAtOnce("web", "198.51.100.10:80"); err != nil {
		t.Fatalf("second connection while the first is relayed (cap 1): %v", err)
	}
	idle := func(what string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for active() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := active(); got != 0 {
			t.Fatalf("active connections after %s = %v, want 0", what, got)
		}
	}
	c.Close()
	idle("the client closed")
	if status, _ := h.httpGet("web", "198.51.100.10:80", "www.example.com"); status != "HTTP/1.1 200 OK" {
		t.Errorf("after the relay ended the tenant's slot was not free: %q", status)
	}
	idle("a second request")

	c = h.keepAlive("web")
	h.srv.Close()
	if h.srv.Drain(100 * time.Millisecond) {
		t.Error("drain returned while a connection was still relayed")
	}
	c.Close()
	if !h.srv.Drain(2 * time.Second) {
		t.Error("drain did not return after the relayed connection ended")
	}
}

// keepAlive opens an HTTP/1.1 keep-alive connection for tenant and reads
// the first response line: the relay then stays up until the client closes.
func (h *harness) keepAlive(tenant string) net.Conn {
	h.t.Helper()
	c := h.connect(tenant, "198.51.100.10:80", false)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		h.t.Fatalf("first response: %q, %v", line, err)
	}
	return c
}

package daemon

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRelayHoldsThenReleasesCaps: a connection being relayed (the relay
// runs on its own goroutine) holds its tenant's slot and counts as active
// until it ends; then the slot is free again, the gauge is back to 0, and
// a drain that waited for it returns.
func TestRelayHoldsThenReleasesCaps(t *testing.T) {
	h := newHarness(t, "[limits]\nmax_connections_per_tenant = 1\n")
	active := func() float64 { return testutil.ToFloat64(h.srv.metrics.active.WithLabelValues("web")) }
	// HTTP/1.1 keep-alive: the relay stays up after the response.
	c := h.connect("web", "198.51.100.10:80", false)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("first response: %q, %v", line, err)
	}
	if got := active(); got != 1 {
		t.Errorf("active connections while relaying = %v, want 1", got)
	}
	if err := h.refusedAtOnce("web", "198.51.100.10:80"); err != nil {
		t.Fatalf("second connection while the first is relayed (cap 1): %v", err)
	}
	if h.srv.drain(100 * time.Millisecond) {
		t.Error("drain returned while a connection was still relayed")
	}
	c.Close()
	deadline := time.Now().Add(3 * time.Second)
	for active() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := active(); got != 0 {
		t.Fatalf("active connections after close = %v, want 0", got)
	}
	if !h.srv.drain(2 * time.Second) {
		t.Error("drain did not return after the relayed connection ended")
	}
	if status, _ := h.httpGet("web", "198.51.100.10:80", "www.example.com"); status != "HTTP/1.1 200 OK" {
		t.Errorf("after the relay ended the tenant's slot was not free: %q", status)
	}
}

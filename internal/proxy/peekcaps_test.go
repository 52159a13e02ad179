package proxy

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/refuse"
)

// TestPeekCapsHaveTheirOwnReasons: first bytes over a cap of the peek are
// refused as soon as the cap is passed, answered in the client's protocol,
// and logged with a reason that names the cap.
func TestPeekCapsHaveTheirOwnReasons(t *testing.T) {
	h := newHarness(t, "")
	// The start of a ClientHello of 256 bytes, in one-byte records.
	var oneByteRecords []byte
	for _, c := range append([]byte{1, 0, 1, 0, 3, 3}, make([]byte, 27)...) {
		oneByteRecords = append(oneByteRecords, 0x16, 3, 1, 0, 1, c)
	}
	tlsAlert := []byte{21, 3, 3, 0, 2, 2, refuse.AlertAccessDenied}
	cases := []struct {
		name, orig, send string
		answer           []byte // the reply starts with this
		reason           string
	}{
		{"ClientHello one byte over max_client_hello", "198.51.100.10:443",
			"\x16\x03\x01\x00\x04\x01\x00\x40\x01", tlsAlert, "hello_too_large"},
		{"ClientHello in 33 one-byte records", "198.51.100.10:443", string(oneByteRecords), tlsAlert, "too_many_records"},
		{"request head over max_http_header", "198.51.100.10:80",
			"GET / HTTP/1.1\r\nHost: www.example.com\r\nX: " + strings.Repeat("a", 16<<10), []byte("HTTP/1.1 403 Forbidden"), "head_too_large"},
	}
	for _, tc := range cases { // not subtests: the harness fails its own t
		c := h.connect("web", tc.orig, false)
		_, _ = io.WriteString(c, tc.send)
		out, _ := io.ReadAll(c)
		if !bytes.HasPrefix(out, tc.answer) {
			t.Fatalf("%s: reply %q; want it to start with %q", tc.name, out, tc.answer)
		}
		t.Logf("%s: %q", tc.name, h.waitLog(map[string]any{"tenant": "web", "reason": tc.reason, "decision": "deny"})["detail"])
	}
	if n := h.dialCount("198.51.100.10:443") + h.dialCount("198.51.100.10:80"); n != 0 {
		t.Fatalf("%d upstream dials for refused connections", n)
	}
}

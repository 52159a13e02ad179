package daemon

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// TLS alert descriptions (RFC 8446 section 6).
const (
	alertAccessDenied     = 49
	alertUnrecognizedName = 112
	alertInternalError    = 80
)

// denyTLS writes a fatal TLS alert record and closes. The client has sent
// only its ClientHello, so a plaintext alert is what it expects.
func denyTLS(c net.Conn, desc byte) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte{21, 3, 3, 0, 2, 2, desc})
	closeGracefully(c)
}

// denyHTTP answers 403 with a one-line plain-text reason and closes. The
// reason the tenant sees names the destination and the kind of refusal but
// never the internal address a name resolved to: that detail is for the
// operator's log, not for an untrusted tenant mapping the network.
func denyHTTP(c net.Conn, reason string) {
	body := "egressfw denied this request: " + oneLine(reason) + "\n"
	resp := fmt.Sprintf("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n%s", len(body), body)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(resp))
	closeGracefully(c)
}

// denyReset closes with a TCP reset (SO_LINGER 0), for bytes that are neither
// TLS nor HTTP and for refusals before anything was read.
func denyReset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// closeGracefully half-closes so the response is delivered before the
// close; unread request bytes would otherwise make the kernel send a reset
// that can destroy the response in flight.
func closeGracefully(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		var buf [512]byte
		for i := 0; i < 64; i++ { // drain a little, bounded
			if _, err := tc.Read(buf[:]); err != nil {
				break
			}
		}
	}
	_ = c.Close()
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Package refuse is what a refused client gets: a TLS alert, an HTTP 403
// (the same bytes for every refusal unless listener.deny_detail = "full"),
// a 502 for an upstream that could not be reached, or a TCP reset; and
// the graceful close that delivers the answer before the reset unread
// bytes would cause. Package proxy decides; this package only answers.
package refuse

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// TLS alert descriptions (RFC 8446 section 6).
const (
	AlertAccessDenied     = 49
	AlertUnrecognizedName = 112
)

// TLS writes a fatal TLS alert record and closes. The client has sent
// only its ClientHello, so a plaintext alert is what it expects.
func TLS(c net.Conn, desc byte) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte{21, 3, 3, 0, 2, 2, desc})
	CloseGracefully(c)
}

// MinimalBody is the 403 body of every refusal under
// listener.deny_detail = "minimal": with the status line and headers fixed
// too, the response is the same bytes whether the name is internal, does
// not resolve, is not allowed or could not be read, so denials do not map
// the network for a tenant.
const MinimalBody = "egressfw denied this request\n"

// Body is the 403 body for a refusal: the same bytes for every refusal
// unless full, else a one-line reason. The reason names the destination and
// the kind of refusal but never the internal address a name resolved to:
// that detail is for the operator's log, not for an untrusted tenant.
func Body(full bool, reason string) string {
	if !full {
		return MinimalBody
	}
	return "egressfw denied this request: " + OneLine(reason) + "\n"
}

// Alert is the TLS alert for a refusal: access_denied for every refusal
// unless full, where a ClientHello that names no host (noName) gets
// unrecognized_name.
func Alert(full, noName bool) byte {
	if full && noName {
		return AlertUnrecognizedName
	}
	return AlertAccessDenied
}

// HTTP answers 403 with body (see Body) and closes. Every header is
// fixed, so only the body can differ between refusals.
func HTTP(c net.Conn, body string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(Forbidden(body)))
	CloseGracefully(c)
}

// Forbidden is the whole 403 response with body: every refused HTTP
// request gets it, the first of a connection or a later one.
func Forbidden(body string) string {
	return fmt.Sprintf("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n%s", len(body), body)
}

// BadGateway answers 502 with a one-line reason (an upstream that could
// not be reached) and closes.
func BadGateway(c net.Conn, reason string) {
	body := "egressfw: " + OneLine(reason) + "\n"
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	CloseGracefully(c)
}

// Reset closes with a TCP reset (SO_LINGER 0), for bytes that are neither
// TLS nor HTTP and for refusals before anything was read.
func Reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// CloseGracefully half-closes so the response is delivered before the
// close; unread request bytes would otherwise make the kernel send a reset
// that can destroy the response in flight.
func CloseGracefully(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		Drain(tc)
	}
	_ = c.Close()
}

// Drain half-closes c, after an answer written to it, and reads (at most
// 32 KiB, for half a second) what the client still sends, so that the
// close that follows does not reset the answer away.
func Drain(c *net.TCPConn) {
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var buf [512]byte
	for i := 0; i < 64; i++ { // drain a little, bounded
		if _, err := c.Read(buf[:]); err != nil {
			break
		}
	}
}

// OneLine replaces control characters (a line break among them) with
// spaces, so a reason stays one line in a response.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

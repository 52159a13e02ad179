package sni

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/tcptest"
)

// peekPair returns the server side of a loopback TCP connection and runs
// send on the client side in the background.
func peekPair(t *testing.T, send func(c net.Conn)) net.Conn {
	t.Helper()
	client, server := tcptest.Pair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		send(client)
	}()
	t.Cleanup(func() {
		server.Close()
		client.Close()
		<-done
	})
	return server
}

// inChunks writes b in pieces of n bytes with a pause between them, the
// way a slow or segmenting path delivers it.
func inChunks(b []byte, n int, then func(c net.Conn)) func(c net.Conn) {
	return func(c net.Conn) {
		for len(b) > 0 {
			k := min(n, len(b))
			if _, err := c.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
			time.Sleep(time.Millisecond)
		}
		if then != nil {
			then(c)
		}
	}
}

func closeWrite(c net.Conn) { _ = c.(*net.TCPConn).CloseWrite() }

func TestPeek(t *testing.T) {
	hello, err := os.ReadFile("testdata/hellos/chromium.bin")
	if err != nil {
		t.Fatal(err)
	}
	fragmented := refragment(hello, 100, 900) // three records, delivered in 7-byte chunks below
	early := append(append([]byte{}, hello...), 0x17, 3, 3, 0, 2, 'h', 'i')
	req := []byte("GET / HTTP/1.1\r\nHost: example.test\r\n\r\nbody")
	short := PeekOptions{Timeout: 200 * time.Millisecond}
	cases := []struct {
		name  string
		send  func(net.Conn)
		opts  PeekOptions
		kind  Kind
		host  string
		err   error // nil: success
		bytes []byte
	}{
		{"TLS in one write", inChunks(hello, len(hello), nil), PeekOptions{}, KindTLS, "example.test", nil, hello},
		{"TLS in 3 records, 7-byte writes", inChunks(fragmented, 7, nil), PeekOptions{}, KindTLS, "example.test", nil, fragmented},
		{"TLS followed by early data", inChunks(early, len(early), nil), PeekOptions{}, KindTLS, "example.test", nil, early},
		{"HTTP in 5-byte writes with body", inChunks(req, 5, nil), PeekOptions{}, KindHTTP, "example.test", nil, nil},
		{"TLS stalls", inChunks(hello[:100], 100, nil), short, KindTLS, "", ErrTimeout, hello[:100]},
		{"nothing sent", func(net.Conn) {}, short, KindUnknown, "", ErrTimeout, []byte{}},
		{"TLS truncated", inChunks(hello[:100], 100, closeWrite), PeekOptions{}, KindTLS, "", ErrTruncated, hello[:100]},
		{"unknown protocol", inChunks([]byte("SSH-2.0-OpenSSH_9.2\r\n"), 100, nil), PeekOptions{}, KindUnknown, "", ErrUnknownProtocol, nil},
		{"malformed HTTP", inChunks([]byte("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 100, nil), PeekOptions{}, KindHTTP, "", ErrMalformed, nil},
		{"HTTP head too large", inChunks([]byte("GET / HTTP/1.1\r\nX: "+strings.Repeat("a", 200)), 50, nil),
			PeekOptions{MaxHTTPHead: 128}, KindHTTP, "", ErrTooLarge, nil},
		{"ClientHello too large", inChunks(hello, len(hello), nil), PeekOptions{MaxHandshake: 1024}, KindTLS, "", ErrTooLarge, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := peekPair(t, tc.send)
			res, got, err := Peek(conn, tc.opts)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("Peek error = %v; want %v", err, tc.err)
			}
			if res.Kind != tc.kind || res.Name != tc.host {
				t.Errorf("Peek = kind %v name %q; want %v %q", res.Kind, res.Name, tc.kind, tc.host)
			}
			if tc.bytes != nil && !bytes.Equal(got, tc.bytes) {
				t.Errorf("Peek returned %d bytes; want exactly the %d sent", len(got), len(tc.bytes))
			}
			if tc.bytes == nil && !bytes.HasPrefix(req, got) && res.Kind == KindHTTP && tc.err == nil {
				t.Errorf("Peek returned %q, not a prefix of what was sent", got)
			}
		})
	}
}

// TestPeekClearsDeadline checks that the connection is usable after Peek
// for longer than the peek timeout.
func TestPeekClearsDeadline(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
	conn := peekPair(t, inChunks(req, len(req), func(c net.Conn) {
		time.Sleep(300 * time.Millisecond)
		_, _ = c.Write([]byte("later"))
	}))
	if _, _, err := Peek(conn, PeekOptions{Timeout: 100 * time.Millisecond}); err != nil {
		t.Fatalf("Peek: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := conn.Read(buf); err != nil || string(buf) != "later" {
		t.Fatalf("read after Peek = %q, %v; want the later bytes (deadline cleared)", buf, err)
	}
}

// countReads counts the Read calls on a connection.
type countReads struct {
	*net.TCPConn
	n int
}

func (c *countReads) Read(b []byte) (int, error) {
	c.n++
	return c.TCPConn.Read(b)
}

// SyscallConn counts the reads made through the raw connection too.
func (c *countReads) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.TCPConn.SyscallConn()
	return &countRaw{RawConn: rc, n: &c.n}, err
}

type countRaw struct {
	syscall.RawConn
	n *int
}

func (r *countRaw) Read(f func(fd uintptr) bool) error {
	*r.n++
	return r.RawConn.Read(f)
}

// TestPeekWaitsForWholeRecords: a ClientHello record written a byte per
// TCP segment, a millisecond apart, would take a read per byte; once it
// knows the handshake header (and after peekFreeReads reads) Peek has the
// kernel wake it only when the record is complete. Afterwards the low-water mark is 1 again: a later
// five-byte write is read at once.
func TestPeekWaitsForWholeRecords(t *testing.T) {
	hello, err := os.ReadFile("testdata/hellos/go-classic.bin")
	if err != nil {
		t.Fatal(err)
	}
	conn := &countReads{TCPConn: peekPair(t, inChunks(hello, 1, func(c net.Conn) {
		time.Sleep(100 * time.Millisecond)
		_, _ = c.Write([]byte("later"))
	})).(*net.TCPConn)}
	res, got, err := Peek(conn, PeekOptions{Timeout: 30 * time.Second})
	if err != nil || res.Name != "example.test" || !bytes.Equal(got, hello) {
		t.Fatalf("Peek = %q, %d bytes, %v; want example.test and the %d bytes sent", res.Name, len(got), err, len(hello))
	}
	t.Logf("%d bytes in 1-byte writes: %d reads", len(hello), conn.n)
	// A read per byte of the record and handshake headers, then the rest.
	if most := max(peekFreeReads, recordHeaderLen+handshakeHeaderLen) + 2; conn.n > most {
		t.Errorf("%d reads for one record written a byte at a time; want at most %d", conn.n, most)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "later" {
		t.Fatalf("read after Peek = %q, %v; want the 5 later bytes (low-water mark back to 1)", buf[:n], err)
	}
}

// TestPeekPacesDrippedHTTPHead: an HTTP request head written a byte per TCP
// segment, a millisecond apart, gives nothing to wait for (no length, so no
// SO_RCVLOWAT); after peekPacedReads reads Peek reads it at most once per
// peekReadGap, each read taking what arrived meanwhile, instead of once
// per byte, and still returns the whole head.
func TestPeekPacesDrippedHTTPHead(t *testing.T) {
	head := []byte("GET / HTTP/1.1\r\nHost: example.test\r\nX-Pad: " + strings.Repeat("x", 400) + "\r\n\r\n")
	conn := &countReads{TCPConn: peekPair(t, inChunks(head, 1, nil)).(*net.TCPConn)}
	t0 := time.Now()
	res, got, err := Peek(conn, PeekOptions{Timeout: 30 * time.Second})
	took := time.Since(t0)
	if err != nil || res.Name != "example.test" || !bytes.Equal(got, head) {
		t.Fatalf("Peek = %q, %d bytes, %v; want example.test and the %d bytes sent", res.Name, len(got), err, len(head))
	}
	most := peekPacedReads + int(took/peekReadGap) + 2
	t.Logf("%d bytes in 1-byte writes over %v: %d reads (at most %d)", len(head), took.Round(time.Millisecond), conn.n, most)
	if conn.n > most {
		t.Errorf("%d reads for a head written a byte at a time over %v; want at most %d", conn.n, took, most)
	}
}

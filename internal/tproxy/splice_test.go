package tproxy

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/tcptest"
)

// pair is a proxied connection on loopback: the test plays client (a) and
// upstream server (b); pa and pb are the proxy's sockets towards them.
type pair struct {
	a, pa, pb, b *net.TCPConn
}

func newPair(t testing.TB) *pair {
	t.Helper()
	var p pair
	p.a, p.pa = tcptest.Pair(t)
	p.pb, p.b = tcptest.Pair(t)
	return &p
}

type spliceResult struct {
	up, down int64
	err      error
	at       time.Time
}

// start runs Splice on the proxy's sockets in the background.
func (p *pair) start(prefix []byte, idle time.Duration, copyFn copyFunc) <-chan spliceResult {
	ch := make(chan spliceResult, 1)
	go func() {
		up, down, err := splice(p.pa, p.pb, prefix, idle, copyFn)
		ch <- spliceResult{up, down, err, time.Now()}
	}()
	return ch
}

// send writes n pseudo-random bytes and half-closes; it returns their hash.
func send(c *net.TCPConn, n int64, seed uint64) ([32]byte, error) {
	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n)
	_, err := io.Copy(io.MultiWriter(c, h), src)
	if err == nil {
		err = c.CloseWrite()
	}
	return [32]byte(h.Sum(nil)), err
}

// recvAll reads to EOF and returns the hash of what it read and the count.
func recvAll(c *net.TCPConn) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, c)
	return [32]byte(h.Sum(nil)), n, err
}

func hashOf(prefix []byte, n int64, seed uint64) [32]byte {
	h := sha256.New()
	h.Write(prefix)
	_, _ = io.Copy(h, io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n))
	return [32]byte(h.Sum(nil))
}

func TestSpliceTransfer(t *testing.T) {
	big := int64(100 << 20)
	if testing.Short() {
		big = 8 << 20
	}
	const reply = 1 << 20
	prefix := []byte("\x16\x03\x01 peeked ClientHello bytes")
	tests := []struct {
		name         string
		clientFirst  bool
		first, after int64
	}{
		{"client sends then half-closes, server answers after EOF", true, big, reply},
		{"server sends then half-closes, client answers after EOF", false, big, reply},
		{"empty both ways", true, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			res := p.start(prefix, 30*time.Second, spliceCopy)
			first, second := p.a, p.b
			firstPrefix, secondPrefix := prefix, []byte(nil) // what the proxy puts before each stream
			if !tc.clientFirst {
				first, second = p.b, p.a
				firstPrefix, secondPrefix = nil, prefix
			}
			errc := make(chan error, 1)
			go func() {
				_, err := send(first, tc.first, 1)
				errc <- err
			}()
			got, n, err := recvAll(second)
			if want := int64(len(firstPrefix)) + tc.first; err != nil || n != want || got != hashOf(firstPrefix, tc.first, 1) {
				t.Fatalf("first stream: %d bytes (want %d), hash match %v, err %v", n, want, got == hashOf(firstPrefix, tc.first, 1), err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("send first stream: %v", err)
			}
			go func() {
				_, err := send(second, tc.after, 2)
				errc <- err
			}()
			got, n, err = recvAll(first)
			if want := int64(len(secondPrefix)) + tc.after; err != nil || n != want || got != hashOf(secondPrefix, tc.after, 2) {
				t.Fatalf("answer: %d bytes (want %d), hash match %v, err %v", n, want, got == hashOf(secondPrefix, tc.after, 2), err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("send answer: %v", err)
			}
			r := <-res
			wantUp, wantDown := int64(len(prefix))+tc.first, tc.after
			if !tc.clientFirst {
				wantUp, wantDown = int64(len(prefix))+tc.after, tc.first
			}
			if r.err != nil || r.up != wantUp || r.down != wantDown {
				t.Fatalf("Splice = (%d, %d, %v), want (%d, %d, nil)", r.up, r.down, r.err, wantUp, wantDown)
			}
		})
	}
}

func TestSplicePrefix(t *testing.T) {
	large := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB: more than a socket buffer takes at once
	tests := []struct {
		name   string
		prefix []byte
	}{
		{"nil", nil},
		{"short", []byte("GET / HTTP/1.1\r\nHost: ex")},
		{"larger than socket buffer", large},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			res := p.start(tc.prefix, 10*time.Second, spliceCopy)
			go func() {
				_, _ = p.a.Write([]byte("ample.org\r\n\r\n"))
				_ = p.a.CloseWrite()
			}()
			got, err := io.ReadAll(p.b)
			if err != nil {
				t.Fatal(err)
			}
			want := append(append([]byte(nil), tc.prefix...), "ample.org\r\n\r\n"...)
			if !bytes.Equal(got, want) {
				t.Fatalf("upstream got %d bytes %.40q..., want %d bytes %.40q...", len(got), got, len(want), want)
			}
			_ = p.b.CloseWrite()
			if r := <-res; r.err != nil || r.up != int64(len(want)) || r.down != 0 {
				t.Fatalf("Splice = (%d, %d, %v), want (%d, 0, nil)", r.up, r.down, r.err, len(want))
			}
		})
	}
}

package relay

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// tcpPair is two connected loopback sockets: a (the peer's end) and b (the
// proxy's end).
func tcpPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan *net.TCPConn, 1)
	go func() {
		c, _ := ln.AcceptTCP()
		ch <- c
	}()
	a, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close() })
	return a, b
}

type result struct {
	up, down int64
	err      error
	at       time.Time
}

// relayed is a client and an upstream joined by a relay: client and
// upstream are the peers' ends.
type relayed struct {
	client, upstream *net.TCPConn
	res              chan result
}

func newRelayed(t testing.TB, r *Relay, prefix []byte, idle time.Duration) *relayed {
	t.Helper()
	client, pc := tcpPair(t)
	pu, upstream := tcpPair(t)
	t.Cleanup(func() { upstream.Close() })
	x := &relayed{client: client, upstream: upstream, res: make(chan result, 2)}
	r.Add(pc, pu, prefix, idle, func(up, down int64, err error) { x.res <- result{up, down, err, time.Now()} })
	return x
}

func (x *relayed) wait(t testing.TB) result {
	t.Helper()
	select {
	case r := <-x.res:
		select {
		case <-x.res:
			t.Fatal("done called twice")
		case <-time.After(50 * time.Millisecond):
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the pair did not end")
	}
	return result{}
}

func newRelay(t testing.TB) *Relay {
	t.Helper()
	r, err := New(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestTransfer: 100 MB one way and 20 MB the other at the same time arrive
// byte for byte; each side's EOF reaches the other; the counts are the
// bytes moved.
func TestTransfer(t *testing.T) {
	r := newRelay(t)
	x := newRelayed(t, r, []byte("PREFIX"), time.Minute)
	up := make([]byte, 20<<20)
	down := make([]byte, 100<<20)
	_, _ = rand.Read(up)
	_, _ = rand.Read(down)
	type got struct {
		sum [32]byte
		n   int64
		err error
	}
	recv := func(c *net.TCPConn) chan got {
		ch := make(chan got, 1)
		go func() {
			h := sha256.New()
			n, err := io.Copy(h, c)
			var g got
			copy(g.sum[:], h.Sum(nil))
			g.n, g.err = n, err
			ch <- g
		}()
		return ch
	}
	atUp, atClient := recv(x.upstream), recv(x.client)
	go func() { _, _ = x.client.Write(up); _ = x.client.CloseWrite() }()
	go func() { _, _ = x.upstream.Write(down); _ = x.upstream.CloseWrite() }()
	gu, gc := <-atUp, <-atClient
	wantUp := sha256.Sum256(append([]byte("PREFIX"), up...))
	if gu.err != nil || gu.sum != wantUp || gu.n != int64(len(up))+6 {
		t.Errorf("upstream got %d bytes (err %v), sum match %v; want %d", gu.n, gu.err, gu.sum == wantUp, len(up)+6)
	}
	if gc.err != nil || gc.sum != sha256.Sum256(down) || gc.n != int64(len(down)) {
		t.Errorf("client got %d bytes (err %v), sum match %v; want %d", gc.n, gc.err, gc.sum == sha256.Sum256(down), len(down))
	}
	res := x.wait(t)
	if res.err != nil || res.up != int64(len(up))+6 || res.down != int64(len(down)) {
		t.Errorf("done(%d, %d, %v), want (%d, %d, nil)", res.up, res.down, res.err, len(up)+6, len(down))
	}
}

// TestHalfClose: the client's EOF reaches upstream while upstream's answer
// still flows back, in both orders; the pair ends when both are done.
func TestHalfClose(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first, then func(*relayed) *net.TCPConn
	}{
		{"client first", func(x *relayed) *net.TCPConn { return x.client }, func(x *relayed) *net.TCPConn { return x.upstream }},
		{"upstream first", func(x *relayed) *net.TCPConn { return x.upstream }, func(x *relayed) *net.TCPConn { return x.client }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newRelayed(t, newRelay(t), nil, time.Minute)
			first, then := tc.first(x), tc.then(x)
			other := map[*net.TCPConn]*net.TCPConn{x.client: x.upstream, x.upstream: x.client}
			_, _ = first.Write([]byte("question"))
			_ = first.CloseWrite()
			b, err := io.ReadAll(other[first])
			if err != nil || string(b) != "question" {
				t.Fatalf("the other side read %q, %v; want the bytes, then EOF", b, err)
			}
			select {
			case r := <-x.res:
				t.Fatalf("the pair ended after one direction: %+v", r)
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := then.Write([]byte("answer")); err != nil {
				t.Fatalf("write after the half-close: %v", err)
			}
			_ = then.CloseWrite()
			b, err = io.ReadAll(first)
			if err != nil || string(b) != "answer" {
				t.Fatalf("the half-closed side read %q, %v; want the answer, then EOF", b, err)
			}
			if r := x.wait(t); r.err != nil || r.up+r.down != 14 {
				t.Fatalf("done(%d, %d, %v), want 14 bytes and nil", r.up, r.down, r.err)
			}
		})
	}
}

// TestResetPropagates: a peer that resets makes the relay reset the other
// side, and done reports the failure.
func TestResetPropagates(t *testing.T) {
	x := newRelayed(t, newRelay(t), nil, time.Minute)
	_, _ = x.client.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(x.upstream, buf); err != nil {
		t.Fatal(err)
	}
	_ = x.upstream.SetLinger(0)
	x.upstream.Close()
	_ = x.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(x.client)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read %v, want a reset", err)
	}
	if r := x.wait(t); r.err == nil {
		t.Errorf("done err = nil, want the failure")
	}
}

// TestIdle: a silent pair, or one whose client half-closed, is reset
// between idle and 1.5 idle after the last byte; bytes trickling in
// either direction keep it open.
func TestIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	trickle := func(from, to *net.TCPConn) time.Time {
		go func() { _, _ = io.Copy(io.Discard, to) }()
		var last time.Time
		for range 12 {
			if _, err := from.Write([]byte{'x'}); err != nil {
				break
			}
			last = time.Now()
			time.Sleep(idle / 6)
		}
		return last
	}
	for _, tc := range []struct {
		name     string
		activity func(x *relayed) time.Time    // when the last byte was sent
		quiet    func(x *relayed) *net.TCPConn // a side the activity does not read
	}{
		{"silent", func(*relayed) time.Time { return time.Now() }, client},
		{"client trickle", func(x *relayed) time.Time { return trickle(x.client, x.upstream) }, client},
		{"upstream trickle", func(x *relayed) time.Time { return trickle(x.upstream, x.client) }, upstream},
		{"half-closed", func(x *relayed) time.Time { _ = x.client.CloseWrite(); return time.Now() }, client},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newRelayed(t, newRelay(t), nil, idle)
			last := tc.activity(x)
			r := x.wait(t)
			if !errors.Is(r.err, ErrIdle) {
				t.Fatalf("done err = %v, want ErrIdle", r.err)
			}
			// The loop's scan runs every idle/4; allow the machine a
			// little more for a late wake.
			if silent := r.at.Sub(last); silent < idle || silent > idle*3/2+idle/4 {
				t.Errorf("reset after %v of silence, want between %v and %v", silent, idle, idle*3/2)
			}
			c := tc.quiet(x)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("read %v after the idle reset, want a reset", err)
			}
		})
	}
}

func client(x *relayed) *net.TCPConn   { return x.client }
func upstream(x *relayed) *net.TCPConn { return x.upstream }

// TestClose: closing the relay resets the pairs it holds.
func TestClose(t *testing.T) {
	r, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	x := newRelayed(t, r, nil, 0)
	_, _ = x.client.Write([]byte("a"))
	b := make([]byte, 1)
	_, _ = io.ReadFull(x.upstream, b)
	r.Close()
	if res := x.wait(t); !errors.Is(res.err, net.ErrClosed) {
		t.Fatalf("done err = %v, want net.ErrClosed", res.err)
	}
	y := newRelayed(t, r, nil, 0)
	if res := y.wait(t); !errors.Is(res.err, net.ErrClosed) {
		t.Fatalf("Add after Close: done err = %v, want net.ErrClosed", res.err)
	}
}

// TestIdlePairsHoldLittle: 2,000 idle pairs cost the process no goroutine
// and under 1 KiB of Go memory each (no stack; the pair's state).
func TestIdlePairsHoldLittle(t *testing.T) {
	r := newRelay(t)
	const n = 2000
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()
	xs := make([]*relayed, n)
	for i := range xs {
		xs[i] = newRelayed(t, r, nil, time.Minute)
	}
	for _, x := range xs {
		_, _ = x.client.Write([]byte("hi"))
		b := make([]byte, 2)
		if _, err := io.ReadFull(x.upstream, b); err != nil || !bytes.Equal(b, []byte("hi")) {
			t.Fatalf("relay: %q, %v", b, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	if g := runtime.NumGoroutine() - g0; g > 10 {
		t.Errorf("%d goroutines for %d idle pairs", g, n)
	}
	// The test's own connections (4 *net.TCPConn per pair, the results'
	// channels) are counted too.
	per := (float64(ms1.HeapInuse+ms1.StackInuse) - float64(ms0.HeapInuse+ms0.StackInuse)) / n
	t.Logf("%.0f bytes of Go heap and stacks per idle pair (the test's connections included)", per)
	if per > 4096 {
		t.Errorf("%.0f bytes per idle pair, want < 4 KiB", per)
	}
}

// TestSlowDoneStallsNoPair: a done function that blocks (a log write to a
// stalled journal) holds up no pair's bytes, on its loop or another.
func TestSlowDoneStallsNoPair(t *testing.T) {
	r, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	release := make(chan struct{})
	defer close(release)
	client, pc := tcpPair(t)
	pu, upstream := tcpPair(t)
	t.Cleanup(func() { upstream.Close() })
	r.Add(pc, pu, nil, 0, func(int64, int64, error) { <-release })
	client.Close()
	upstream.Close() // the pair ends; its done blocks
	time.Sleep(50 * time.Millisecond)
	y := newRelayed(t, r, nil, 0)
	_, _ = y.client.Write([]byte("still moving"))
	b := make([]byte, 12)
	_ = y.upstream.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(y.upstream, b); err != nil || string(b) != "still moving" {
		t.Fatalf("a pair on the loop read %q, %v while another's done blocked", b, err)
	}
}

// BenchmarkThroughput is one relayed stream on loopback, 1 MiB writes (as
// tproxy's BenchmarkSpliceThroughput/splice, to compare).
func BenchmarkThroughput(b *testing.B) {
	const chunk = 1 << 20
	x := newRelayed(b, newRelay(b), nil, time.Minute)
	done := make(chan int64)
	go func() {
		n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, x.upstream, make([]byte, 256<<10))
		done <- n
	}()
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		if _, err := x.client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = x.client.CloseWrite()
	if n := <-done; n != int64(b.N)*chunk {
		b.Fatalf("received %d bytes, want %d", n, int64(b.N)*chunk)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/MiB")
	_ = x.upstream.CloseWrite()
	x.wait(b)
}

// cpuTime is the user+system CPU time this process has used, in ns.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

package tproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSpliceIdle(t *testing.T) {
	const idle = 200 * time.Millisecond
	// trickle sends one byte every 50ms for 600ms from one side, so the
	// pair is never idle for 200ms until it stops (unless the machine
	// stalls the writer: the checks below use the real write times).
	trickle := func(from, to *net.TCPConn) []time.Time {
		go func() { _, _ = io.Copy(io.Discard, to) }()
		var sent []time.Time
		for range 12 {
			if _, err := from.Write([]byte{'x'}); err != nil {
				break
			}
			sent = append(sent, time.Now())
			time.Sleep(50 * time.Millisecond)
		}
		return sent
	}
	tests := []struct {
		name     string
		activity func(p *pair) []time.Time // returns when bytes were sent
	}{
		{"silent pair", func(*pair) []time.Time { return nil }},
		{"client trickle keeps it open", func(p *pair) []time.Time { return trickle(p.a, p.b) }},
		{"upstream trickle keeps it open", func(p *pair) []time.Time { return trickle(p.b, p.a) }},
		{"half-closed pair still idles out", func(p *pair) []time.Time { _ = p.a.CloseWrite(); return nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			start := time.Now()
			res := p.start(nil, idle, spliceCopy)
			sent := tc.activity(p)
			var r spliceResult
			select {
			case r = <-res:
			case <-time.After(5 * time.Second):
				t.Fatal("Splice did not return after the pair went idle")
			}
			if !errors.Is(r.err, ErrIdle) {
				t.Fatalf("Splice err = %v, want ErrIdle", r.err)
			}
			checkIdleClose(t, idle, start, sent, r.at)
			for name, c := range map[string]*net.TCPConn{"client": p.a, "upstream": p.b} {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, err := io.Copy(io.Discard, c)
				if isTimeout(err) {
					t.Errorf("%s side still open after idle close", name)
				}
			}
		})
	}
}

// checkIdleClose asserts that a pair closed at end had gone idle: the longest
// silence between start, the sends before end and end must be at least idle
// (a stalled sender legitimately lets the pair idle out early), and the final
// silence must not exceed 1.5*idle plus scheduling slack.
func checkIdleClose(t *testing.T, idle time.Duration, start time.Time, sent []time.Time, end time.Time) {
	t.Helper()
	last, longest := start, time.Duration(0)
	for _, s := range sent {
		if s.After(end) {
			break
		}
		longest = max(longest, s.Sub(last))
		last = s
	}
	final := end.Sub(last)
	longest = max(longest, final)
	if longest < idle {
		t.Errorf("closed at %v although bytes were sent at %v: longest silence %v < idle %v",
			end.Sub(start), offsets(start, sent), longest, idle)
	}
	if final > idle*3/2+time.Second {
		t.Errorf("closed %v after the last byte, want at most %v+slack", final, idle*3/2)
	}
}

func offsets(start time.Time, ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Sub(start).Round(time.Millisecond)
	}
	return out
}

func TestSpliceAbort(t *testing.T) {
	p := newPair(t)
	res := p.start([]byte("hello"), 10*time.Second, spliceCopy)
	if _, err := io.ReadFull(p.b, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	_ = p.b.SetLinger(0)
	p.b.Close() // upstream resets
	writeErr := make(chan error, 1)
	go func() {
		for { // keep the client writing so the proxy hits the reset
			if _, err := p.a.Write(make([]byte, 32<<10)); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	select {
	case r := <-res:
		if r.err == nil || errors.Is(r.err, ErrIdle) {
			t.Fatalf("Splice err = %v, want the upstream reset", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Splice did not return after upstream reset")
	}
	// The client may see the reset, or a FIN first when the upstream->client
	// copy read EOF after the reset had been consumed; either way it is shut.
	_ = p.a.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.Copy(io.Discard, p.a); isTimeout(err) {
		t.Fatal("client connection still open after abort")
	}
	select {
	case <-writeErr:
	case <-time.After(5 * time.Second):
		t.Fatal("client writes still succeed after abort")
	}
}

// userCopy is a plain user-space copy loop; the 32 KiB buffer is what
// io.Copy would use once the TCPConn types are hidden.
func userCopy(dst, src *net.TCPConn) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 32<<10))
}

// readChars returns the bytes this process moved through read-like syscalls
// (rchar in /proc/self/io). splice(2) is not counted there.
func readChars(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// TestSpliceStaysInKernel proves the pump takes the splice(2) path: only the
// test's own receiver reads the payload into user space, whereas a user-space
// copy would read it a second time.
func TestSpliceStaysInKernel(t *testing.T) {
	const size = 16 << 20
	tests := []struct {
		name    string
		copyFn  copyFunc
		readsX2 bool // payload read into user space twice
	}{
		{"Splice uses splice(2)", spliceCopy, false},
		{"user-space copy (control)", userCopy, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			before := readChars(t)
			res := p.start(nil, time.Minute, tc.copyFn)
			go func() { _, _ = send(p.a, size, 3) }()
			_, n, err := recvAll(p.b)
			if err != nil || n != size {
				t.Fatalf("received %d, %v", n, err)
			}
			_ = p.b.CloseWrite()
			<-res
			read := readChars(t) - before
			if twice := read > size*3/2; twice != tc.readsX2 {
				t.Fatalf("process read %d bytes through read(2) for a %d byte transfer; read twice = %v, want %v", read, size, twice, tc.readsX2)
			}
		})
	}
}

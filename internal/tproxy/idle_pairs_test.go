package tproxy

import (
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idlePairs is a set of proxied loopback pairs, each with Splice running.
type idlePairs struct {
	pairs []*pair
	res   []<-chan spliceResult
}

// openIdlePairs starts n proxied pairs and moves one byte each way through
// each, so that every direction has taken the splice path at least once,
// then leaves them idle.
func openIdlePairs(tb testing.TB, n int, idle time.Duration, copyFn copyFunc) *idlePairs {
	tb.Helper()
	ps := &idlePairs{}
	for range n {
		p := newPair(tb)
		ps.pairs = append(ps.pairs, p)
		ps.res = append(ps.res, p.start(nil, idle, copyFn))
	}
	for _, p := range ps.pairs {
		for _, dir := range [][2]interface {
			io.Reader
			io.Writer
		}{{p.a, p.b}, {p.b, p.a}} {
			if _, err := dir[0].Write([]byte{'w'}); err != nil {
				tb.Fatalf("warm-up write: %v", err)
			}
			if _, err := io.ReadFull(dir[1], make([]byte, 1)); err != nil {
				tb.Fatalf("warm-up read: %v", err)
			}
		}
	}
	return ps
}

// exchange sends size bytes each way through every pair (payload depends on
// the pair's index), half-closes both ends, checks that each side received
// exactly what the other sent and that Splice returned the right counts.
func (ps *idlePairs) exchange(tb testing.TB, size int) {
	tb.Helper()
	for i, p := range ps.pairs {
		up := bytes.Repeat([]byte{byte(i), 'u'}, size/2)
		down := bytes.Repeat([]byte{byte(i), 'd'}, size/2)
		errc := make(chan error, 2)
		for _, w := range []struct {
			c    interface{ CloseWrite() error }
			wr   io.Writer
			data []byte
		}{{p.a, p.a, up}, {p.b, p.b, down}} {
			go func() {
				_, err := w.wr.Write(w.data)
				if err == nil {
					err = w.c.CloseWrite()
				}
				errc <- err
			}()
		}
		gotUp, errUp := io.ReadAll(p.b)
		gotDown, errDown := io.ReadAll(p.a)
		if errUp != nil || errDown != nil || !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
			tb.Fatalf("pair %d: upstream got %d bytes (want %d, %v), client got %d (want %d, %v)",
				i, len(gotUp), len(up), errUp, len(gotDown), len(down), errDown)
		}
		for range 2 {
			if err := <-errc; err != nil {
				tb.Fatalf("pair %d: send: %v", i, err)
			}
		}
		r := <-ps.res[i]
		if want := int64(len(up) + 1); r.err != nil || r.up != want || r.down != want {
			tb.Fatalf("pair %d: Splice = (%d, %d, %v), want (%d, %d, nil)", i, r.up, r.down, r.err, want, want)
		}
	}
}

// fdKinds counts this process's open descriptors that are sockets and
// pipes, and returns the pipe descriptor numbers.
func fdKinds(tb testing.TB) (sockets int, pipes map[int]bool) {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	pipes = map[int]bool{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, gone by now
		}
		switch {
		case strings.HasPrefix(target, "socket:"):
			sockets++
		case strings.HasPrefix(target, "pipe:"):
			fd, _ := strconv.Atoi(e.Name())
			pipes[fd] = true
		}
	}
	return sockets, pipes
}

// residentBytes is the process's resident set size.
func residentBytes(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// memInUse is heap in use and goroutine stacks after a full GC.
func memInUse() (heap, stack int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), int64(ms.StackInuse)
}

// TestSpliceIdleHoldsNoPipe opens many proxied pairs, moves a byte each way
// through each and leaves them idle: each pair must then cost exactly its
// four sockets (the test holds both ends of both connections) and no pipe
// outside the free list; data must still flow byte-exact afterwards.
func TestSpliceIdleHoldsNoPipe(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 100
	}
	tests := []struct {
		name       string
		copyFn     copyFunc
		holdsPipes bool // every idle direction holds a pipe
	}{
		{"pipe-less wait", spliceCopy, false},
		{"TCPConn.ReadFrom (control)", readFromCopy, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s0, p0 := fdKinds(t)
			held0 := heldPipeFDs(p0)
			ps := openIdlePairs(t, n, time.Minute, tc.copyFn)
			// The last warm-up byte can reach its reader just before the
			// pump gives its pipe back: poll briefly.
			var sockets, held int
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				s1, p1 := fdKinds(t)
				sockets, held = s1-s0, heldPipeFDs(p1)
				if sockets == 4*n && (held >= 4*n) == tc.holdsPipes && (tc.holdsPipes || held <= held0) {
					break
				}
			}
			if sockets != 4*n {
				t.Errorf("%d idle pairs added %d socket fds, want exactly %d", n, sockets, 4*n)
			}
			if tc.holdsPipes && held < 4*n {
				t.Errorf("%d pipe fds held outside the free list, want >= %d (control: one pipe per idle direction)", held, 4*n)
			}
			if !tc.holdsPipes && held > held0 {
				t.Errorf("%d idle pairs hold %d pipe fds outside the free list (%d before), want none", n, held-held0, held0)
			}
			time.Sleep(200 * time.Millisecond)
			ps.exchange(t, 32<<10)
		})
	}
}

// heldPipeFDs counts the pipe descriptors that are not in the free list.
func heldPipeFDs(all map[int]bool) int {
	pipes.mu.Lock()
	defer pipes.mu.Unlock()
	n := len(all)
	for _, p := range pipes.free {
		for _, fd := range []int{p.r, p.w} {
			if all[fd] {
				n--
			}
		}
	}
	return n
}

// BenchmarkSpliceIdlePairs opens 1,000 idle proxied pairs per iteration and
// reports what each costs while idle: heap, goroutine stacks, RSS,
// goroutines, socket and pipe descriptors. The test holds all four sockets
// of a pair (client, the proxy's two, upstream), so 4 socket fds per pair is
// the floor; the proxy's own share is 2.
func BenchmarkSpliceIdlePairs(b *testing.B) {
	const n = 1000
	for _, bc := range []struct {
		name   string
		copyFn copyFunc
	}{
		{"splice", spliceCopy},
		{"readfrom", readFromCopy},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var heap, stack, rss, gs, socks, pipeFDs float64
			for range b.N {
				heap0, stack0 := memInUse()
				rss0, g0 := residentBytes(b), runtime.NumGoroutine()
				s0, p0 := fdKinds(b)
				ps := openIdlePairs(b, n, time.Minute, bc.copyFn)
				time.Sleep(100 * time.Millisecond) // let the pumps park
				heap1, stack1 := memInUse()
				heap += float64(heap1 - heap0)
				stack += float64(stack1 - stack0)
				rss += float64(residentBytes(b) - rss0)
				gs += float64(runtime.NumGoroutine() - g0)
				s1, p1 := fdKinds(b)
				socks += float64(s1 - s0)
				pipeFDs += float64(len(p1) - len(p0))
				ps.exchange(b, 2)
			}
			per := float64(b.N * n)
			b.ReportMetric(heap/per, "heap-B/pair")
			b.ReportMetric(stack/per, "stack-B/pair")
			b.ReportMetric(rss/per, "rss-B/pair")
			b.ReportMetric(gs/per, "goroutines/pair")
			b.ReportMetric(socks/per, "socket-fds/pair")
			b.ReportMetric(pipeFDs/per, "pipe-fds/pair")
		})
	}
}

// readFromCopy is Go's own TCPConn.ReadFrom splice path, which holds a pipe
// while it waits for data (the control for the pipe-less wait).
func readFromCopy(dst, src *net.TCPConn) (int64, error) { return dst.ReadFrom(src) }

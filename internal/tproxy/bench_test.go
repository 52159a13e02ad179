package tproxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkSpliceThroughput pushes 1 MiB chunks client->upstream through one
// long-lived proxied pair; compare the sub-benchmarks' MB/s and process CPU
// per MiB: splice (the pipe-less wait), readfrom (Go's TCPConn.ReadFrom
// splice path, which Splice used before) and userspace. Both pay the same for the test's own
// endpoints (a user-space writer and reader), so the difference is the pump.
func BenchmarkSpliceThroughput(b *testing.B) {
	for _, bc := range []struct {
		name   string
		copyFn copyFunc
	}{
		{"splice", spliceCopy},
		{"readfrom", readFromCopy},
		{"userspace", userCopy},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const chunk = 1 << 20
			p := newPair(b)
			res := p.start(nil, time.Minute, bc.copyFn)
			done := make(chan int64)
			go func() {
				n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, p.b, make([]byte, 256<<10))
				done <- n
			}()
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for range b.N {
				if _, err := p.a.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			_ = p.a.CloseWrite()
			if n := <-done; n != int64(b.N)*chunk {
				b.Fatalf("received %d bytes, want %d", n, int64(b.N)*chunk)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/MiB")
			_ = p.b.CloseWrite()
			<-res
		})
	}
}

// cpuTime is the user+system CPU time this process has used, in ns.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkProxiedConnection measures one whole proxied connection on
// loopback: accept on a transparent listener, OriginalDst, DialAny to the
// upstream, Splice of a tiny request/response with half-closes. allocs/op
// include the test's client and upstream endpoints (dial + accept).
func BenchmarkProxiedConnection(b *testing.B) {
	ln, err := Listen(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		b.Skipf("transparent listener (needs CAP_NET_ADMIN): %v", err)
	}
	defer ln.Close()
	upLn := listenLoopback(b, "127.0.0.1:0")
	upAddr := upLn.Addr().(*net.TCPAddr).AddrPort()
	go serveUpstream(upLn)
	d := Dialer{Timeout: time.Second}
	lnAddr := ln.Addr().(*net.TCPAddr)
	req, resp := []byte("GET / HTTP/1.0\r\n\r\n"), make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		client, err := net.DialTCP("tcp4", nil, lnAddr)
		if err != nil {
			b.Fatal(err)
		}
		c, err := ln.AcceptTCP()
		if err != nil {
			b.Fatal(err)
		}
		if OriginalDst(c) != lnAddr.AddrPort() {
			b.Fatal("wrong original destination")
		}
		up, _, err := d.DialAny(context.Background(), []netip.AddrPort{upAddr})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			_, _ = client.Write(req)
			_ = client.CloseWrite()
			_, _ = io.ReadFull(client, resp[:2])
			client.Close()
		}()
		if _, _, err := Splice(c, up, nil, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// serveUpstream answers each connection with "ok" once the request is in.
func serveUpstream(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
			_, _ = c.Write([]byte("ok"))
		}()
	}
}

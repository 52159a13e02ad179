package h1relay

import (
	"io"
	"testing"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/tcptest"
)

// allowAll lets every request go without reading it.
type allowAll struct{}

func (allowAll) Request(*httphead.Requests, []byte) []byte { return nil }
func (allowAll) Unreadable(error, bool) []byte             { return []byte("refused\n") }

// BenchmarkKeptAliveRequest: one request and its response through the
// relay on a kept-alive connection (the Judge allows at once): what the
// relay itself costs a request, in time and allocations (all goroutines'
// count, the client's and the upstream's included, which allocate none).
func BenchmarkKeptAliveRequest(b *testing.B) {
	req := []byte("GET /x HTTP/1.1\r\nHost: ok.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	client, c := tcptest.Pair(b)
	upSrv, up := tcptest.Pair(b)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := upSrv.Read(buf); err != nil {
				return
			}
			if _, err := upSrv.Write(resp); err != nil {
				return
			}
		}
	}()
	var r Conn
	if _, err := r.Init(c, append([]byte(nil), req...), testConfig, allowAll{}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _, _, _ = r.Run(up) }()
	got := make([]byte, len(resp))
	if _, err := io.ReadFull(client, got); err != nil { // the first request's
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := client.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, got); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	client.Close()
	upSrv.Close()
	<-done
}

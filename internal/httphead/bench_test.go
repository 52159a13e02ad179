package httphead

import (
	"strings"
	"testing"
)

// browserHead is a browser-like request head.
var browserHead = []byte("GET /index.html?q=1 HTTP/1.1\r\n" +
	"Host: www.example.test\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Connection: keep-alive\r\n\r\n")

// BenchmarkParse parses a browser-like request head, the head alone.
func BenchmarkParse(b *testing.B) {
	b.SetBytes(int64(len(browserHead)))
	b.ReportAllocs()
	for b.Loop() {
		if _, st, err := Parse(browserHead, 0); st != Done {
			b.Fatal(st, err)
		}
	}
}

// BenchmarkParseHTTP reads the same head as the relay reads each request
// of a kept-alive connection (Requests.Next: the head parsed and its
// framing checked, then taken): set against BenchmarkParse, what the
// framing scan adds per request. (It was sni.BenchmarkParseHTTP, the
// peek's parse, before the head parser moved here.)
func BenchmarkParseHTTP(b *testing.B) {
	var r Requests
	r.Init(0)
	b.SetBytes(int64(len(browserHead)))
	b.ReportAllocs()
	for b.Loop() {
		step, err := r.Next(browserHead)
		if err != nil || step.Kind != StepHead || step.N != int64(len(browserHead)) {
			b.Fatal(step, err)
		}
		r.Advance(step.N)
		if !r.AtBoundary() {
			b.Fatal("a GET without a body left the stream inside a request")
		}
	}
}

// BenchmarkParseDripped is the parsing cost of a 2 KiB request head that
// arrives one byte per read: "old" parses the whole buffer again after
// every read, as the peek did before the parser was incremental; "new"
// continues where it stopped. examined-B/op counts the bytes the parser
// looked at.
func BenchmarkParseDripped(b *testing.B) {
	head := []byte("GET /index.html HTTP/1.1\r\nHost: www.example.test\r\n" +
		strings.Repeat("X-Padding: abcdefghijklmnopqrstuvwxyz\r\n", 50) + "\r\n")
	b.Run("old", func(b *testing.B) {
		legacyWork = 0
		for b.Loop() {
			for end := 1; end <= len(head); end++ {
				if _, st, err := legacyParse(head[:end], 0); st != NeedMore {
					if st != Done {
						b.Fatal(err)
					}
					break
				}
			}
		}
		b.ReportMetric(float64(legacyWork)/float64(b.N), "examined-B/op")
	})
	b.Run("new", func(b *testing.B) {
		work := 0
		for b.Loop() {
			p := NewParser(0)
			for end := 1; end <= len(head); end++ {
				if _, st, _ := p.Parse(head[:end]); st != NeedMore {
					break
				}
			}
			work += p.Examined()
		}
		b.ReportMetric(float64(work)/float64(b.N), "examined-B/op")
	})
}

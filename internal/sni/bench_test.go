package sni

import (
	"os"
	"testing"
)

// BenchmarkParseClientHello parses a captured ~1.5 KiB post-quantum
// ClientHello (Go crypto/tls with X25519MLKEM768).
func BenchmarkParseClientHello(b *testing.B) {
	for _, name := range []string{"go-pq", "chromium"} {
		hello, err := os.ReadFile("testdata/hellos/" + name + ".bin")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(hello)))
			b.ReportAllocs()
			for b.Loop() {
				if _, st, err := ParseClientHello(hello, 0); st != Done {
					b.Fatal(st, err)
				}
			}
		})
	}
}

// BenchmarkParseClientHelloFragmented is the reassembling path: three records.
func BenchmarkParseClientHelloFragmented(b *testing.B) {
	hello, err := os.ReadFile("testdata/hellos/go-pq.bin")
	if err != nil {
		b.Fatal(err)
	}
	wire := refragment(hello, 100, 700)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, st, err := ParseClientHello(wire, 0); st != Done {
			b.Fatal(st, err)
		}
	}
}

// BenchmarkParseHTTP parses a browser-like request head.
func BenchmarkParseHTTP(b *testing.B) {
	head := []byte("GET /index.html?q=1 HTTP/1.1\r\n" +
		"Host: www.example.test\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\n" +
		"Connection: keep-alive\r\n\r\n")
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, st, err := ParseHTTP(head, 0); st != Done {
			b.Fatal(st, err)
		}
	}
}

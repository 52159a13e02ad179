package sni

import (
	"os"
	"strings"
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

// BenchmarkPeekDripped is the parsing cost of one connection's peek when
// the client drips its first bytes, one read per TLS record or TCP
// segment: a 2 KiB post-quantum ClientHello (chromium) in one-byte
// records or one-byte segments, and a 2 KiB request head in one-byte
// segments. "old" parses the whole buffer again after every read, as the
// peek did before it was incremental; "new" continues where it stopped
// ("new, cap lifted" without the 32-record cap, which otherwise refuses a
// hello in one-byte records at its 33rd record). examined-B/op counts the
// bytes the parsers looked at.
func BenchmarkPeekDripped(b *testing.B) {
	hello, err := os.ReadFile("testdata/hellos/chromium.bin")
	if err != nil {
		b.Fatal(err)
	}
	head := []byte("GET /index.html HTTP/1.1\r\nHost: www.example.test\r\n" +
		strings.Repeat("X-Padding: abcdefghijklmnopqrstuvwxyz\r\n", 50) + "\r\n")
	oneByteRecords := inRecords(handshakeBytes(hello), 1)
	recordReads := func(wire []byte) []int { // a read per record
		var ends []int
		for off := 0; off < len(wire); {
			off += recordHeaderLen + (int(wire[off+3])<<8 | int(wire[off+4]))
			ends = append(ends, off)
		}
		return ends
	}
	byteReads := func(wire []byte) []int {
		ends := make([]int, len(wire))
		for i := range ends {
			ends[i] = i + 1
		}
		return ends
	}
	lifted := PeekOptions{MaxHelloRecords: 1 << 20}.withDefaults()
	for _, in := range []struct {
		name string
		wire []byte
		ends []int
	}{
		{"hello in 1-byte records", oneByteRecords, recordReads(oneByteRecords)},
		{"hello in 1-byte segments", hello, byteReads(hello)},
		{"head in 1-byte segments", head, byteReads(head)},
	} {
		b.Run(in.name+"/old", func(b *testing.B) {
			legacyWork = 0
			for b.Loop() {
				for _, end := range in.ends {
					if _, st, err := legacyParse(in.wire[:end], 0, 0); st != NeedMore {
						if st != Done {
							b.Fatal(err)
						}
						break
					}
				}
			}
			b.ReportMetric(float64(legacyWork)/float64(b.N), "examined-B/op")
		})
		for _, v := range []struct {
			name string
			opts PeekOptions
		}{{"new", PeekOptions{}.withDefaults()}, {"new, cap lifted", lifted}} {
			b.Run(in.name+"/"+v.name, func(b *testing.B) {
				work := 0
				for b.Loop() {
					p := newParser(v.opts)
					for _, end := range in.ends {
						if _, st, _ := p.parse(in.wire[:end]); st != NeedMore {
							break
						}
					}
					work += p.examined()
				}
				b.ReportMetric(float64(work)/float64(b.N), "examined-B/op")
			})
		}
	}
}

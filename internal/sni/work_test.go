package sni

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/httphead"
)

// httpSeeds holds the committed request heads (internal/httphead's seeds).
var httpSeeds = filepath.Join("..", "httphead", "testdata", "http")

// workPerByte bounds the bytes a peek examines per byte it read: the
// search that finds a byte, the check of its line or the copy of its
// record, and the final parse of the message each look at it once or
// twice, however the bytes arrive.
const workPerByte = 6

// workInput is one connection's first bytes and the options to peek with.
type workInput struct {
	name string
	b    []byte
	opts PeekOptions
}

// workInputs are the captured hellos and request heads, the hellos also in
// one-byte and 64-byte records (the record cap lifted, so that the whole
// hello is reassembled), and the largest hello and head the default caps
// admit, dripped the worst ways.
func workInputs(t *testing.T) []workInput {
	t.Helper()
	lifted := PeekOptions{MaxHelloRecords: 1 << 20}.withDefaults()
	defaults := PeekOptions{}.withDefaults()
	var in []workInput
	hellos, _ := filepath.Glob(filepath.Join("testdata", "hellos", "*.bin"))
	heads, _ := filepath.Glob(filepath.Join(httpSeeds, "*.http"))
	if len(hellos) == 0 || len(heads) == 0 {
		t.Fatal("no captured hellos or heads in testdata")
	}
	for _, p := range hellos {
		wire := readFile(t, p)
		name := strings.TrimSuffix(filepath.Base(p), ".bin")
		msg := handshakeBytes(wire)
		in = append(in,
			workInput{name, wire, defaults},
			workInput{name + " in 1-byte records", inRecords(msg, 1), lifted},
			workInput{name + " in 1-byte records, capped", inRecords(msg, 1), defaults},
			workInput{name + " in 64-byte records", inRecords(msg, 64), defaults})
	}
	for _, p := range heads {
		in = append(in, workInput{filepath.Base(p), readFile(t, p), defaults})
	}
	base := helloMsg([]ext{sni("max.example.test"), padding(0)})
	largest := helloMsg([]ext{sni("max.example.test"), padding(DefaultMaxHandshake - (len(base) - handshakeHeaderLen))})
	manyHeaders := "GET / HTTP/1.1\r\nHost: max.example.test\r\n" +
		strings.Repeat("X-A: b\r\n", (httphead.DefaultMaxHead-64)/8) + "\r\n"
	longLine := "GET / HTTP/1.1\r\nHost: max.example.test\r\nX-Long: " + strings.Repeat("a", httphead.DefaultMaxHead-64) + "\r\n\r\n"
	return append(in,
		workInput{"16 KiB hello in 2 records", inRecords(largest, 1<<14), defaults},
		workInput{"16 KiB hello in 1-byte records", inRecords(largest, 1), lifted},
		workInput{"16 KiB head of short headers", []byte(manyHeaders), defaults},
		workInput{"16 KiB head of one long line", []byte(longLine), defaults},
		workInput{"head over the cap", []byte(longLine + strings.Repeat("a", httphead.DefaultMaxHead)), defaults},
		workInput{"h2 preface", []byte(httphead.Preface + "\x00\x00\x12\x04"), defaults})
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readSizes names a way of splitting the bytes into reads.
type readSizes struct {
	name string
	next func() int
}

func splitsOf(seed uint64) []readSizes {
	rng := rand.New(rand.NewPCG(seed, 15))
	out := []readSizes{{"one read", func() int { return 1 << 30 }}, {"1-byte reads", func() int { return 1 }}}
	for _, most := range []int{2, 7, 64, 1500} {
		out = append(out, readSizes{fmt.Sprintf("random reads of 1-%d bytes", most), func() int { return 1 + rng.IntN(most) }})
	}
	return out
}

// feed gives b to a fresh parser in reads of the given sizes, as Peek does,
// until it decides, and returns its answer and how many bytes it read.
// step, if not nil, sees the parser after each undecided read of n bytes.
func feed(b []byte, opts PeekOptions, sizes func() int, step func(p *parser, n int)) (*parser, int, Result, Status, error) {
	p := newParser(opts)
	n := 0
	for {
		n = min(len(b), n+sizes())
		res, st, err := p.parse(b[:n])
		if st != NeedMore || n == len(b) {
			return p, n, res, st, err
		}
		if step != nil {
			step(p, n)
		}
	}
}

// TestWorkIsLinear is the property that keeps a dripping client cheap: for
// every input and every way of splitting it into reads, the peek examines
// at most workPerByte bytes per byte read, and decides exactly as one
// parse of the same bytes does.
func TestWorkIsLinear(t *testing.T) {
	worst, worstAt := 0.0, ""
	defer func() { t.Logf("most examined per byte read: %.2f (%s)", worst, worstAt) }()
	for _, in := range workInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			want, wst, werr := newParser(in.opts).parse(in.b)
			for _, s := range splitsOf(uint64(len(in.b))) {
				p, n, res, st, err := feed(in.b, in.opts, s.next, nil)
				if st != wst || fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(res, want) {
					t.Errorf("%s: %v, %v, %+v; one parse gives %v, %v, %+v", s.name, st, err, res, wst, werr, want)
				}
				if r := float64(p.examined()) / float64(n); r > worst {
					worst, worstAt = r, in.name+", "+s.name
				}
				if w := p.examined(); w > workPerByte*n {
					t.Errorf("%s: examined %d bytes for %d read (%.1f per byte); want at most %d per byte",
						s.name, w, n, float64(w)/float64(n), workPerByte)
				}
			}
		})
	}
}

// TestWorkBoundCatchesReparsing shows the bound of TestWorkIsLinear has
// teeth: the peek as it was, parsing the whole buffer again after every
// read, breaks it many times over for a dripped hello or head.
func TestWorkBoundCatchesReparsing(t *testing.T) {
	for _, in := range workInputs(t) {
		if in.name != "go-pq in 1-byte records" && in.name != "16 KiB head of one long line" {
			continue
		}
		t.Run(in.name, func(t *testing.T) {
			legacyWork = 0
			n := 0
			for n < len(in.b) {
				n++
				if _, st, _ := legacyParse(in.b[:n], in.opts.MaxHandshake, in.opts.MaxHTTPHead); st != NeedMore {
					break
				}
			}
			t.Logf("re-parsing examined %d bytes for %d read (%.0f per byte)", legacyWork, n, float64(legacyWork)/float64(n))
			if legacyWork <= 20*workPerByte*n {
				t.Errorf("re-parsing after every 1-byte read examined only %d bytes for %d; the bound would not tell it from linear", legacyWork, n)
			}
		})
	}
}

package httphead

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// workPerByte bounds the bytes a Parser examines per byte it was given:
// the search that finds a byte and the check of its line each look at it
// once or twice, however the bytes arrive (internal/sni holds a whole peek
// to the same bound).
const workPerByte = 6

// workInput is one head and the limit to parse it with.
type workInput struct {
	name  string
	b     []byte
	limit int
}

// workInputs are the committed heads and the largest heads the default
// limit admits, made of short lines or of one long one, a head over the
// limit and the HTTP/2 preface.
func workInputs(t *testing.T) []workInput {
	t.Helper()
	heads, _ := filepath.Glob(filepath.Join("testdata", "http", "*.http"))
	if len(heads) == 0 {
		t.Fatal("no request heads in testdata/http")
	}
	var in []workInput
	for _, p := range heads {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, workInput{filepath.Base(p), b, DefaultMaxHead})
	}
	manyHeaders := "GET / HTTP/1.1\r\nHost: max.example.test\r\n" +
		strings.Repeat("X-A: b\r\n", (DefaultMaxHead-64)/8) + "\r\n"
	longLine := "GET / HTTP/1.1\r\nHost: max.example.test\r\nX-Long: " + strings.Repeat("a", DefaultMaxHead-64) + "\r\n\r\n"
	return append(in,
		workInput{"16 KiB head of short headers", []byte(manyHeaders), DefaultMaxHead},
		workInput{"16 KiB head of one long line", []byte(longLine), DefaultMaxHead},
		workInput{"head over the limit", []byte(longLine + strings.Repeat("a", DefaultMaxHead)), DefaultMaxHead},
		workInput{"h2 preface", []byte(Preface + "\x00\x00\x12\x04"), DefaultMaxHead})
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

// feed gives b to a fresh Parser in reads of the given sizes until it
// decides, and returns its answer and how many bytes it was given.
func feed(b []byte, limit int, sizes func() int) (*Parser, int, Head, Status, error) {
	p := NewParser(limit)
	n := 0
	for {
		n = min(len(b), n+sizes())
		h, st, err := p.Parse(b[:n])
		if st != NeedMore || n == len(b) {
			return p, n, h, st, err
		}
	}
}

// TestWorkIsLinear is the property that keeps a dripping client cheap: for
// every head and every way of splitting it into reads, the Parser examines
// at most workPerByte bytes per byte, and decides exactly as one parse of
// the same bytes does.
func TestWorkIsLinear(t *testing.T) {
	worst, worstAt := 0.0, ""
	defer func() { t.Logf("most examined per byte read: %.2f (%s)", worst, worstAt) }()
	for _, in := range workInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			want, wst, werr := Parse(in.b, in.limit)
			for _, s := range splitsOf(uint64(len(in.b))) {
				p, n, h, st, err := feed(in.b, in.limit, s.next)
				if st != wst || fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(h, want) {
					t.Errorf("%s: %v, %v, %+v; one parse gives %v, %v, %+v", s.name, st, err, h, wst, werr, want)
				}
				if r := float64(p.Examined()) / float64(n); r > worst {
					worst, worstAt = r, in.name+", "+s.name
				}
				if w := p.Examined(); w > workPerByte*n {
					t.Errorf("%s: examined %d bytes for %d read (%.1f per byte); want at most %d per byte",
						s.name, w, n, float64(w)/float64(n), workPerByte)
				}
			}
		})
	}
}

// TestWorkBoundCatchesReparsing shows the bound of TestWorkIsLinear has
// teeth: the parser as it was, walking the whole buffer again after every
// read, breaks it many times over for a head dripped a byte at a time.
func TestWorkBoundCatchesReparsing(t *testing.T) {
	for _, in := range workInputs(t) {
		if in.name != "16 KiB head of one long line" {
			continue
		}
		legacyWork = 0
		n := 0
		for n < len(in.b) {
			n++
			if _, st, _ := legacyParse(in.b[:n], in.limit); st != NeedMore {
				break
			}
		}
		t.Logf("re-parsing examined %d bytes for %d read (%.0f per byte)", legacyWork, n, float64(legacyWork)/float64(n))
		if legacyWork <= 20*workPerByte*n {
			t.Errorf("re-parsing after every 1-byte read examined only %d bytes for %d; the bound would not tell it from linear", legacyWork, n)
		}
	}
}

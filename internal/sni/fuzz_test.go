package sni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/dnsname"
	"github.com/egressfw/egressfw/internal/httphead"
)

// addFileSeeds adds every file matching pattern as a seed.
func addFileSeeds(f *testing.F, pattern string) {
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds match %s (%v)", pattern, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzClientHello(f *testing.F) {
	addFileSeeds(f, filepath.Join("testdata", "hellos", "*.bin"))
	for _, tc := range malformedHelloCases(f) {
		if len(tc.wire) <= 4<<10 { // huge seeds only slow mutation and minimisation down
			f.Add(tc.wire)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, st, err := ParseClientHello(b, 0)
		checkStatusErr(t, st, err)
		if st != Done {
			return
		}
		checkName(t, res)
		msg, _, _ := legacyHandshakeMessage(b, DefaultMaxHandshake)
		for _, cut := range []int{len(b) / 2, len(b) - 1} {
			if _, pst, perr := ParseClientHello(b[:cut], 0); pst == Malformed {
				t.Fatalf("prefix of %d/%d bytes is malformed (%v) but the whole is done", cut, len(b), perr)
			}
		}
		// Re-fragmenting the message into three records must not matter.
		var wire []byte
		for _, part := range splitThree(msg) {
			wire = append(wire, inRecords(part, maxRecordPayload)...)
		}
		got, gst, gerr := ParseClientHello(wire, 0)
		if gst != Done || !reflect.DeepEqual(got, res) {
			t.Fatalf("re-fragmented = %+v, %v, %v; want %+v", got, gst, gerr, res)
		}
	})
}

// splitThree cuts b into up to three non-empty parts of varying sizes.
func splitThree(b []byte) [][]byte {
	a, c := 1+len(b)/3, 1+len(b)/2
	if len(b) < 3 {
		return [][]byte{b}
	}
	return [][]byte{b[:a], b[a:c], b[c:]}
}

// FuzzHTTP checks the hand-over to internal/httphead: every head it
// parses is one Sniff sends to it, Parse reports it as httphead does, and
// an httphead error matches this package's sentinel of the same meaning.
func FuzzHTTP(f *testing.F) {
	addFileSeeds(f, filepath.Join(httpSeeds, "*.http"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wst, werr := httpResult(httphead.Parse(b, 1024))
		checkStatusErr(t, wst, werr)
		if errors.Is(werr, httphead.ErrMalformed) != errors.Is(werr, ErrMalformed) ||
			errors.Is(werr, httphead.ErrTooLarge) != errors.Is(werr, ErrTooLarge) {
			t.Fatalf("error %v: httphead's and sni's sentinels disagree", werr)
		}
		k, kst := Sniff(b)
		if wst == Done {
			checkName(t, want)
			// Sniff gives up on a method of maxMethodLen bytes or more (an
			// unknown protocol, reset), which httphead would read.
			if len(want.HTTPMethod) < maxMethodLen && (k != KindHTTP || kst != Done) {
				t.Fatalf("httphead.Parse is done but Sniff says %v, %v", k, kst)
			}
		}
		if k != KindHTTP || kst != Done {
			return
		}
		res, st, err := Parse(b, 0, 1024)
		if st != wst || fmt.Sprint(err) != fmt.Sprint(werr) || errClass(err) != errClass(werr) || !reflect.DeepEqual(res, want) {
			t.Fatalf("Parse = %v, %v, %+v; httphead gives %v, %v, %+v", st, err, res, wst, werr, want)
		}
	})
}

// FuzzParseSplits feeds b to the incremental parser in reads whose sizes
// cuts gives (1 + each byte, in turn; one byte at a time when empty), as
// Peek does. It must decide exactly as one parse of b, within the linear
// work bound and before the wire bound Peek allows, never within fewer
// bytes than it said it wants; and, with the record cap lifted, as the
// parsers that started over on every read did.
func FuzzParseSplits(f *testing.F) {
	for _, pattern := range []string{filepath.Join("testdata", "hellos", "*.bin"), filepath.Join(httpSeeds, "*.http")} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, []byte{})
			f.Add(b, []byte{4, 0, 200})
		}
	}
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		opts := PeekOptions{MaxHandshake: 4096, MaxHTTPHead: 1024}.withDefaults()
		want, wst, werr := newParser(opts).parse(b)
		checkStatusErr(t, wst, werr)
		k := 0
		p, n, res, st, err := feed(b, opts, func() int {
			if len(cuts) == 0 {
				return 1
			}
			k++
			return 1 + int(cuts[(k-1)%len(cuts)])
		}, func(p *parser, n int) {
			// Peek sleeps until wants() more bytes are in: fewer must not decide.
			if w := p.wants(); w > 1 && n+w-1 <= len(b) {
				if _, wst, _ := newParser(opts).parse(b[:n+w-1]); wst != NeedMore {
					t.Fatalf("after %d bytes the parser wants %d more, but %d bytes decide (%v)", n, w, n+w-1, wst)
				}
			}
		})
		if st != wst || fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(res, want) {
			t.Fatalf("fed in pieces: %v, %v, %+v; in one piece: %v, %v, %+v", st, err, res, wst, werr, want)
		}
		if w := p.examined(); w > workPerByte*n {
			t.Fatalf("examined %d bytes for %d read; want at most %d per byte", w, n, workPerByte)
		}
		if st == NeedMore && len(b) >= opts.maxWire(res.Kind) {
			t.Fatalf("%d bytes of %v without a decision; Peek gives up at %d", len(b), res.Kind, opts.maxWire(res.Kind))
		}
		lifted := opts
		lifted.MaxHelloRecords = 1 << 20
		got, gst, gerr := newParser(lifted).parse(b)
		old, ost, oerr := legacyParse(b, opts.MaxHandshake, opts.MaxHTTPHead)
		if gst != ost || errClass(gerr) != errClass(oerr) || !reflect.DeepEqual(got, old) {
			t.Fatalf("incremental: %v, %v, %+v; re-parsing: %v, %v, %+v", gst, gerr, got, ost, oerr, old)
		}
	})
}

// errClass names the sentinels err wraps.
func errClass(err error) string {
	var c []string
	for _, s := range []error{ErrMalformed, ErrTooLarge, ErrTooManyRecords, ErrIPLiteralSNI, ErrUnknownProtocol} {
		if errors.Is(err, s) {
			c = append(c, s.Error())
		}
	}
	return strings.Join(c, ",")
}

// checkStatusErr asserts that exactly Malformed results carry an error.
func checkStatusErr(t *testing.T, st Status, err error) {
	t.Helper()
	if (st == Malformed) != (err != nil) {
		t.Fatalf("status %v with error %v", st, err)
	}
}

// checkName asserts a Done result's host is normalised and unambiguous.
func checkName(t *testing.T, res Result) {
	t.Helper()
	if res.Name != "" && res.Addr.IsValid() {
		t.Fatalf("both name %q and addr %v", res.Name, res.Addr)
	}
	if res.Name == "" {
		return
	}
	if n, err := dnsname.Normalize(res.Name); n != res.Name || err != nil {
		t.Fatalf("name %q is not normalised (%q, %v)", res.Name, n, err)
	}
}

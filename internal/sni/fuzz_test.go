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
)

// addFileSeeds adds every file matching pattern under testdata as a seed.
func addFileSeeds(f *testing.F, pattern string) {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds match testdata/%s (%v)", pattern, err)
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
	addFileSeeds(f, "hellos/*.bin")
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

func FuzzHTTP(f *testing.F) {
	addFileSeeds(f, "http/*.http")
	f.Fuzz(func(t *testing.T, b []byte) {
		res, st, err := ParseHTTP(b, 1024)
		checkStatusErr(t, st, err)
		if st != Done {
			return
		}
		checkName(t, res)
		if k, kst := Sniff(b); k != KindHTTP || kst != Done {
			t.Fatalf("ParseHTTP is done but Sniff says %v, %v", k, kst)
		}
		if res.H2Preface && (res.Name != "" || res.Addr.IsValid()) {
			t.Fatalf("HTTP/2 preface with a host: %+v", res)
		}
		for i := 1; i < min(len(b), 1100); i++ {
			pres, pst, perr := ParseHTTP(b[:i], 1024)
			if pst == Malformed || pst == Done && !reflect.DeepEqual(pres, res) {
				t.Fatalf("prefix of %d/%d bytes = %+v, %v, %v; whole = %+v", i, len(b), pres, pst, perr, res)
			}
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
	for _, pattern := range []string{"hellos/*.bin", "http/*.http"} {
		paths, _ := filepath.Glob(filepath.Join("testdata", pattern))
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

package httphead

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

// addSeeds adds every request head under testdata/http as a seed, each
// with the extra arguments more returns for it.
func addSeeds(f *testing.F, more ...any) {
	paths, err := filepath.Glob(filepath.Join("testdata", "http", "*.http"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds in testdata/http (%v)", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]any{b}, more...)...)
	}
}

// FuzzParse checks a head parsed in one piece: a Done head names a
// normalised host or none (never one with the preface), ends within the
// bytes and the limit and parses the same alone, and every prefix of it
// is undecided.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1024
		h, st, err := Parse(b, limit)
		checkStatusErr(t, st, err)
		if st != Done {
			return
		}
		checkName(t, h)
		if h.H2Preface && (h.Name != "" || h.Addr.IsValid()) {
			t.Fatalf("HTTP/2 preface with a host: %+v", h)
		}
		if h.Len <= 0 || h.Len > len(b) || h.Len > limit {
			t.Fatalf("Len = %d for %d bytes (limit %d)", h.Len, len(b), limit)
		}
		if alone, ast, aerr := Parse(b[:h.Len], limit); ast != Done || !reflect.DeepEqual(alone, h) {
			t.Fatalf("the head alone = %+v, %v, %v; with what follows = %+v", alone, ast, aerr, h)
		}
		for i := 1; i < min(len(b), 1100); i++ {
			ph, pst, perr := Parse(b[:i], limit)
			if pst == Malformed || pst == Done && !reflect.DeepEqual(ph, h) {
				t.Fatalf("prefix of %d/%d bytes = %+v, %v, %v; whole = %+v", i, len(b), ph, pst, perr, h)
			}
		}
	})
}

// FuzzParseSplits feeds b to a Parser in reads whose sizes cuts gives (1 +
// each byte, in turn; one byte at a time when empty), as a connection's
// reads arrive. It must decide exactly as one parse of b, within the
// linear work bound, and as the parser that started over on every read
// did.
func FuzzParseSplits(f *testing.F) {
	addSeeds(f, []byte{})
	addSeeds(f, []byte{4, 0, 200})
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		const limit = 1024
		want, wst, werr := Parse(b, limit)
		checkStatusErr(t, wst, werr)
		k := 0
		p, n, h, st, err := feed(b, limit, func() int {
			if len(cuts) == 0 {
				return 1
			}
			k++
			return 1 + int(cuts[(k-1)%len(cuts)])
		})
		if st != wst || fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(h, want) {
			t.Fatalf("fed in pieces: %v, %v, %+v; in one piece: %v, %v, %+v", st, err, h, wst, werr, want)
		}
		if w := p.Examined(); w > workPerByte*n {
			t.Fatalf("examined %d bytes for %d read; want at most %d per byte", w, n, workPerByte)
		}
		if st == NeedMore && len(b) >= limit {
			t.Fatalf("%d bytes without a decision; the limit is %d", len(b), limit)
		}
		old, ost, oerr := legacyParse(b, limit)
		if ost != wst || errClass(oerr) != errClass(werr) || !reflect.DeepEqual(old, want) {
			t.Fatalf("incremental: %v, %v, %+v; re-parsing: %v, %v, %+v", wst, werr, want, ost, oerr, old)
		}
	})
}

// errClass names the sentinels err wraps.
func errClass(err error) string {
	var c []string
	for _, s := range []error{ErrMalformed, ErrTooLarge} {
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

// checkName asserts a Done head's host is normalised and unambiguous.
func checkName(t *testing.T, h Head) {
	t.Helper()
	if h.Name != "" && h.Addr.IsValid() {
		t.Fatalf("both name %q and addr %v", h.Name, h.Addr)
	}
	if h.Name == "" {
		return
	}
	if n, err := dnsname.Normalize(h.Name); n != h.Name || err != nil {
		t.Fatalf("name %q is not normalised (%q, %v)", h.Name, n, err)
	}
}

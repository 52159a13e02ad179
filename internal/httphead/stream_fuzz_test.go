package httphead

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// refRequests is what net/http.ReadRequest finds in b: each request with
// its body read whole, until an error; eof says whether that error was the
// clean end of the input.
func refRequests(b []byte) (out []seen, eof bool) {
	br := bufio.NewReader(bytes.NewReader(b))
	for {
		if atEOF(br) {
			return out, true
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return out, false
		}
		s := seen{Method: req.Method}
		if req.Host != "" {
			name, addr, port, err := ParseAuthority(req.Host)
			if err != nil {
				return out, false // a host we refuse
			}
			s.Host, s.Port = name, port
			if addr.IsValid() {
				s.Host = addr.String()
			}
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return out, false
		}
		s.Body = string(body)
		out = append(out, s)
	}
}

// atEOF reports whether br has no byte left.
func atEOF(br *bufio.Reader) bool {
	_, err := br.Peek(1)
	return errors.Is(err, io.EOF)
}

// sameMessages compares what the stream found with what the reference
// found: the requests both found must agree (method, host, port where both
// name one, and the body of those the stream found whole); where the stream found fewer, it must have refused or
// stopped reading, never taken a request the reference found for part of
// another message; where it found more, the reference must have failed on
// the next one (a request it could not read), not run out of input.
func sameMessages(t *testing.T, got []seen, end string, err error, ref []seen, refEOF bool) {
	t.Helper()
	n := min(len(got), len(ref))
	for i := range n {
		g, r := got[i], ref[i]
		if g.Port != 0 && r.Port != 0 && g.Port != r.Port || g.Method != r.Method || g.Host != r.Host ||
			g.Status != r.Status || g.Complete && g.Body != r.Body {
			t.Fatalf("message %d: stream %v, reference %v (stream ended %s %v)", i, g, r, end, err)
		}
	}
	switch {
	case len(got) < len(ref) && end != endRefused && end != endStopped:
		t.Fatalf("stream found %d messages and ended %s; the reference found %d: %v", len(got), end, len(ref), ref)
	case len(got) > len(ref) && refEOF:
		t.Fatalf("stream found %d messages %v; the reference %d, then the end of the input", len(got), got, len(ref))
	case end == endEOF && len(got) == len(ref) && !refEOF:
		t.Fatalf("stream took all input as %d messages; the reference failed after them", len(got))
	}
}

// cutter returns read sizes from cuts (1 + each byte, in turn), or the
// whole input at once when cuts is empty.
func cutter(cuts []byte) func() int {
	k := 0
	return func() int {
		if len(cuts) == 0 {
			return 1 << 30
		}
		k++
		return 1 + int(cuts[(k-1)%len(cuts)])
	}
}

// addStreamSeeds adds every file under testdata/dir as a seed.
func addStreamSeeds(f *testing.F, dir string) {
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds in testdata/%s (%v)", dir, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{})
		f.Add(b, []byte{2, 0, 9})
	}
}

// FuzzRequestStream: the requests Requests finds in a client's bytes, read
// as they arrive in reads of any sizes, are those net/http.ReadRequest
// finds in the same bytes, with the same bodies, or the stream refuses (or
// stops reading) first. So no request can hide inside another's body from
// the relay that judges each one.
func FuzzRequestStream(f *testing.F) {
	addStreamSeeds(f, "stream")
	f.Fuzz(func(t *testing.T, b, cuts []byte) {
		got, end, err := walkRequests(b, 1024, cutter(cuts))
		if (end == endRefused) != (err != nil) {
			t.Fatalf("ended %s with error %v", end, err)
		}
		whole, wend, werr := walkRequests(b, 1024, cutter(nil))
		if fmtSeen(whole) != fmtSeen(got) || wend != end || (werr == nil) != (err == nil) {
			t.Fatalf("in reads: %v %s %v; at once: %v %s %v", got, end, err, whole, wend, werr)
		}
		ref, refEOF := refRequests(b)
		sameMessages(t, got, end, err, ref, refEOF)
	})
}

// refResponses is what net/http.ReadResponse finds in b, the requests
// being HEAD where isHEAD says: until an error, or a 101 (the connection
// is then another protocol's).
func refResponses(b []byte, isHEAD func(int) bool) (out []seen, eof bool) {
	br := bufio.NewReader(bytes.NewReader(b))
	final := 0
	for {
		req := &http.Request{Method: http.MethodGet}
		if isHEAD(final) {
			req.Method = http.MethodHead
		}
		if atEOF(br) {
			return out, true
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return out, false
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return out, false
		}
		out = append(out, seen{Status: resp.StatusCode, Body: string(body)})
		if resp.StatusCode == 101 {
			return out, false
		}
		if resp.StatusCode >= 200 {
			final++
		}
	}
}

// FuzzResponseStream: the responses Responses finds are those
// net/http.ReadResponse finds, with the same bodies, or it refuses first;
// heads says which requests were HEAD (bit i of byte i/8).
func FuzzResponseStream(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "responses", "*"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds in testdata/responses (%v)", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{}, []byte{})
		f.Add(b, []byte{0x02}, []byte{3, 0})
	}
	f.Fuzz(func(t *testing.T, b, heads, cuts []byte) {
		isHEAD := func(i int) bool { return i/8 < len(heads) && heads[i/8]>>(i%8)&1 == 1 }
		got, end, err := walkResponses(b, isHEAD, cutter(cuts))
		whole, wend, _ := walkResponses(b, isHEAD, cutter(nil))
		if fmtSeen(whole) != fmtSeen(got) || wend != end {
			t.Fatalf("in reads: %v %s %v; at once: %v %s", got, end, err, whole, wend)
		}
		ref, refEOF := refResponses(b, isHEAD)
		sameMessages(t, got, end, err, ref, refEOF)
	})
}

func fmtSeen(s []seen) string {
	var b bytes.Buffer
	for _, m := range s {
		b.WriteString(m.String())
		b.WriteByte('\n')
	}
	return b.String()
}

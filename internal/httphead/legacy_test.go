package httphead

import "bytes"

// This file keeps the head parser as it was before it became incremental:
// each call walks its input from the first byte. It is the oracle
// FuzzParseSplits compares the Parser with, and the "old" side of
// BenchmarkParseDripped. legacyWork counts the bytes it examines, the way
// the Parser counts its own.

var legacyWork int

func legacyParse(b []byte, limit int) (Head, Status, error) {
	h, st, err := legacyParseHead(b, limit)
	if st == NeedMore {
		return Head{}, NeedMore, nil // as the Parser reports it
	}
	return h, st, err
}

func legacyParseHead(b []byte, limit int) (Head, Status, error) {
	if limit <= 0 {
		limit = DefaultMaxHead
	}
	var r Head
	head := b[:min(len(b), limit)]
	if n := min(len(head), len(Preface)); string(head[:n]) == Preface[:n] {
		legacyWork += n
		if n < len(Preface) {
			st, err := tooLargeOr(NeedMore, nil, len(b), limit)
			return r, st, err
		}
		r.Method, r.Version, r.H2Preface, r.Len = "PRI", "HTTP/2.0", true, len(Preface)
		return r, Done, nil
	}
	line, rest, st, err := legacyNextLine(head)
	if st != Done {
		st, err = tooLargeOr(st, err, len(b), limit)
		return r, st, err
	}
	target, err := parseRequestLine(&r, line)
	if err != nil {
		return r, Malformed, err
	}
	host, hasHost, rest, st, err := legacyScanHeaders(rest)
	if st != Done {
		st, err = tooLargeOr(st, err, len(b), limit)
		return r, st, err
	}
	if err := resolveTarget(&r, target, host, hasHost); err != nil {
		return r, Malformed, err
	}
	r.Len = len(head) - len(rest)
	return r, Done, nil
}

func legacyNextLine(b []byte) (line, rest []byte, st Status, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		legacyWork += 2 * len(b)
		if j := bytes.IndexByte(b, '\r'); j >= 0 && j < len(b)-1 {
			return nil, nil, Malformed, malformed("bare CR in request head")
		}
		return nil, nil, NeedMore, nil
	}
	legacyWork += 3 * (i + 1)
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, Malformed, malformed("bare LF in request head")
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, Malformed, malformed("bare CR in request head")
	}
	return line, b[i+1:], Done, nil
}

// legacyScanHeaders reads header lines up to the empty one and returns the
// Host value and the bytes after the head.
func legacyScanHeaders(b []byte) (host []byte, hasHost bool, rest []byte, st Status, err error) {
	for {
		var line []byte
		line, b, st, err = legacyNextLine(b)
		if st != Done {
			return nil, false, nil, st, err
		}
		if len(line) == 0 {
			return host, hasHost, b, Done, nil
		}
		name, value, err := headerField(line)
		if err != nil {
			return nil, false, nil, Malformed, err
		}
		if asciiEqualFold(name, "host") {
			if hasHost {
				return nil, false, nil, Malformed, malformed("duplicate Host header")
			}
			host, hasHost = value, true
		}
	}
}

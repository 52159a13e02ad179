package httphead

import "bytes"

// StepKind says what the next bytes of a message stream are (see Step).
type StepKind uint8

// Step kinds.
const (
	StepMore    StepKind = iota // undecided: read more bytes and call again
	StepHead                    // a complete head of N bytes
	StepFraming                 // N checked bytes of body framing: a chunk-size line, a chunk's CRLF, a trailer line
	StepData                    // N bytes of body payload, which may go beyond the bytes at hand
	StepRest                    // the rest of the connection is the body (a close-delimited response)
)

// Step is what the next bytes of a stream are. The caller forwards them
// and says how many it forwarded (Advance): a head or framing step whole,
// a data step in parts if it likes (what is buffered, then the rest
// spliced from the socket).
type Step struct {
	Kind StepKind
	N    int64
}

// MaxChunkLine bounds a chunk-size line with its extensions, as net/http does.
const MaxChunkLine = 4096

// Body follows the framing of one message body: it checks every byte of
// chunked framing (size lines, the CRLF after each chunk's data, the
// trailer section) and leaves the payload alone, whose length it knows.
// A chunk-size line is 1-16 hex digits (a value below 2^62), then either
// its CRLF or optional whitespace, ";" and extensions without control
// bytes; trailer lines are checked as header fields are. Anything else is
// malformed: no bare CR or LF, no whitespace after the size without an
// extension.
type Body struct {
	state   bodyState
	left    int64 // bytes left of a Content-Length body or of the current chunk
	size    int64 // the chunk size Next read, taken by Advance; -1: the trailer section ends
	scan    int   // where the search for the current line's LF continues
	trailer int   // trailer bytes so far
	limit   int   // of the trailer section
}

type bodyState uint8

const (
	bodyDone bodyState = iota
	bodyLength
	bodyChunkSize
	bodyChunkData
	bodyChunkEnd
	bodyTrailer
	bodyRest
)

// start begins a body framed by f; limit bounds its trailer section.
func (b *Body) start(f Framing, limit int) {
	*b = Body{limit: limit}
	switch f.Body {
	case BodyLength:
		b.state, b.left = bodyLength, f.Length
	case BodyChunked:
		b.state = bodyChunkSize
	case BodyUntilClose:
		b.state = bodyRest
	}
	if b.state == bodyLength && b.left <= 0 {
		b.state = bodyDone
	}
}

// done reports whether the body is complete.
func (b *Body) done() bool { return b.state == bodyDone }

// next tells what the bytes at the start of buf are.
func (b *Body) next(buf []byte) (Step, error) {
	switch b.state {
	case bodyLength, bodyChunkData:
		return Step{StepData, b.left}, nil
	case bodyRest:
		return Step{Kind: StepRest}, nil
	case bodyChunkEnd:
		switch {
		case len(buf) >= 2 && buf[0] == '\r' && buf[1] == '\n':
			return Step{StepFraming, 2}, nil
		case len(buf) >= 2 || len(buf) == 1 && buf[0] != '\r':
			return Step{}, malformed("chunk data not followed by CRLF")
		}
		return Step{}, nil
	case bodyChunkSize:
		return b.sizeLine(buf)
	case bodyTrailer:
		return b.trailerLine(buf)
	}
	return Step{}, malformed("no body to read")
}

// line finds the CRLF-terminated line at the start of buf, searching at
// most max bytes and no byte twice; ok false: not complete yet.
func (b *Body) line(buf []byte, max int, what string) (line []byte, ok bool, err error) {
	lim := buf[:min(len(buf), max)]
	i := bytes.IndexByte(lim[b.scan:], '\n')
	if i < 0 {
		b.scan = len(lim)
		if len(buf) >= max {
			return nil, false, malformed("%s longer than %d bytes", what, max)
		}
		return nil, false, nil
	}
	i += b.scan
	if i == 0 || buf[i-1] != '\r' {
		return nil, false, malformed("bare LF in %s", what)
	}
	line = buf[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, false, malformed("bare CR in %s", what)
	}
	return line, true, nil
}

func (b *Body) sizeLine(buf []byte) (Step, error) {
	line, ok, err := b.line(buf, MaxChunkLine, "chunk-size line")
	if !ok {
		return Step{}, err
	}
	if b.size, err = parseChunkSize(line); err != nil {
		return Step{}, err
	}
	return Step{StepFraming, int64(len(line) + 2)}, nil
}

// maxChunkSize bounds a chunk's size (16 hex digits could overflow int64).
const maxChunkSize = 1 << 62

// parseChunkSize reads "1*HEXDIG [ BWS ; chunk-ext ]".
func parseChunkSize(line []byte) (int64, error) {
	var size int64
	n := 0
	for ; n < len(line) && hexVal(line[n]) >= 0; n++ {
		if n == 16 || size >= maxChunkSize>>4 {
			return 0, malformed("chunk size %q is too large", truncate(line))
		}
		size = size<<4 | int64(hexVal(line[n]))
	}
	if n == 0 {
		return 0, malformed("chunk-size line %q does not start with a hex number", truncate(line))
	}
	ext := line[n:]
	for len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
		ext = ext[1:]
	}
	switch {
	case n == len(line):
		return size, nil
	case len(ext) == 0 || ext[0] != ';':
		return 0, malformed("chunk size followed by %q, not an extension", truncate(line[n:]))
	case !allIn(ext, &valueTable):
		return 0, malformed("control byte in a chunk extension")
	}
	return size, nil
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func (b *Body) trailerLine(buf []byte) (Step, error) {
	line, ok, err := b.line(buf, b.limit-b.trailer, "trailer section")
	if !ok {
		return Step{}, err
	}
	b.size = 0
	if len(line) == 0 {
		b.size = -1
	} else if _, _, err := headerField(line); err != nil {
		return Step{}, err
	}
	return Step{StepFraming, int64(len(line) + 2)}, nil
}

// advance takes n forwarded bytes: all of a framing step, or up to N of a
// data step.
func (b *Body) advance(n int64) {
	b.scan = 0
	switch b.state {
	case bodyLength:
		if b.left -= n; b.left <= 0 {
			b.state = bodyDone
		}
	case bodyChunkData:
		if b.left -= n; b.left <= 0 {
			b.state = bodyChunkEnd
		}
	case bodyChunkSize:
		if b.size == 0 {
			b.state = bodyTrailer
		} else {
			b.state, b.left = bodyChunkData, b.size
		}
	case bodyChunkEnd:
		b.state = bodyChunkSize
	case bodyTrailer:
		b.trailer += int(n)
		if b.size < 0 {
			b.state = bodyDone
		}
	}
}

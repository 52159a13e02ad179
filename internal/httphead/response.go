package httphead

import "fmt"

// MaxResponseHead bounds a response head (status line and fields).
const MaxResponseHead = 64 << 10

// Responses follows the responses a server sends on one connection, for
// their framing only: where each ends, so that the next one is known. A
// head is a status line ("HTTP/1.1 200 OK"; the reason may be empty or
// absent) and header fields checked as a request's are (CRLF line ends
// only, no obs-fold, no control bytes); its framing as RFC 9112 6.3 says
// (see Framing; Content-Length and Transfer-Encoding read as strictly as a
// request's), given whether the request was HEAD. Like Requests it copies
// nothing: Next tells, Advance takes. The zero value is not ready: call
// Init.
type Responses struct {
	lines   Parser // the line scanner of the current head
	status  int
	version string
	framing Framing
	body    Body
	state   streamState
	started bool // the status line is in
}

// Init readies r for a connection.
func (r *Responses) Init() {
	*r = Responses{lines: Parser{limit: MaxResponseHead}}
}

// Next tells what the bytes at the start of buf are; toHEAD says whether
// the request the response answers was HEAD, which matters for the head
// only. A malformed head or framing is an error.
func (r *Responses) Next(buf []byte, toHEAD bool) (Step, error) {
	switch r.state {
	case inBody:
		return r.body.next(buf)
	case headDone:
		return Step{StepHead, int64(r.lines.line)}, nil
	}
	head := buf[:min(len(buf), MaxResponseHead)]
	for {
		line, st, _ := r.lines.nextLine(head)
		switch {
		case st == NeedMore && len(buf) >= MaxResponseHead:
			return Step{}, fmt.Errorf("%w: http: response head does not end within %d bytes", ErrTooLarge, MaxResponseHead)
		case st == NeedMore:
			return Step{}, nil
		case st == Malformed:
			return Step{}, malformed("a line of the response head does not end in CRLF (bare CR or LF)")
		case !r.started:
			if err := r.statusLine(line); err != nil {
				return Step{}, err
			}
			r.started = true
		case len(line) == 0:
			var err error
			if r.framing, err = responseFraming(buf[:r.lines.line], r.version, r.status, toHEAD); err != nil {
				return Step{}, err
			}
			r.state = headDone
			return Step{StepHead, int64(r.lines.line)}, nil
		}
	}
}

// statusLine checks "HTTP/1.x SP 3DIGIT [SP reason]".
func (r *Responses) statusLine(line []byte) error {
	switch {
	case len(line) < 12 || line[8] != ' ' || len(line) > 12 && line[12] != ' ':
		return malformed("status line %q is not HTTP-version SP status SP reason", truncate(line))
	case string(line[:8]) == "HTTP/1.1":
		r.version = "HTTP/1.1"
	case string(line[:8]) == "HTTP/1.0":
		r.version = "HTTP/1.0"
	default:
		return malformed("unsupported response version %q", truncate(line[:8]))
	}
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return malformed("status code %q is not 100-599", truncate(code))
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(line) > 12 && !allIn(line[13:], &valueTable) {
		return malformed("control byte in the reason phrase")
	}
	return nil
}

// Status is the status code of the head Next found.
func (r *Responses) Status() int { return r.status }

// Framing is the framing of the head Next found.
func (r *Responses) Framing() Framing { return r.framing }

// Advance takes the n bytes the caller forwarded, as Requests.Advance.
func (r *Responses) Advance(n int64) {
	switch r.state {
	case headDone:
		r.body.start(r.framing, MaxResponseHead)
		r.state = inBody
	case inBody:
		r.body.advance(n)
	}
	if r.state == inBody && r.body.done() {
		r.state = inHead
		r.lines, r.started = Parser{limit: MaxResponseHead}, false
	}
}

// AtBoundary reports whether the stream is between two responses.
func (r *Responses) AtBoundary() bool { return r.state == inHead }

package httphead

// Requests follows the requests a client sends on one connection, as they
// arrive: each head, checked as Parse checks a head and then for its
// framing (see Framing: anything two parsers could read differently is
// malformed), then its body's framing (see Body). It reads and copies
// nothing: fed the bytes not yet forwarded (the buffer starts at the
// stream's current position), Next tells what they are, and the caller
// forwards them and says how many (Advance). The zero value is not ready:
// call Init.
//
// A head's host is read only when the caller asks (Resolve), so that a
// caller that recognises the Host bytes of an earlier request (HostValue)
// need not normalise the name again.
type Requests struct {
	limit   int
	p       Parser
	framing Framing
	body    Body
	state   streamState
}

type streamState uint8

const (
	inHead   streamState = iota // reading a head
	headDone                    // the head is in; Advance takes it
	inBody                      // reading its body
)

// Init readies r for a connection whose heads must each end within limit
// bytes (DefaultMaxHead when <= 0); the same bound applies to a chunked
// body's trailer section.
func (r *Requests) Init(limit int) {
	if limit <= 0 {
		limit = DefaultMaxHead
	}
	*r = Requests{limit: limit}
	r.p = Parser{limit: limit, deferTarget: true}
}

// Next tells what the bytes at the start of buf are: a complete head
// (StepHead, whose Head and Framing are then available), body framing or
// payload, or not enough to tell (StepMore). A malformed head or framing is
// an error (wrapping ErrMalformed, or ErrTooLarge for a head over the
// limit); the stream cannot continue after it.
func (r *Requests) Next(buf []byte) (Step, error) {
	switch r.state {
	case inBody:
		return r.body.next(buf)
	case headDone:
		return Step{StepHead, int64(r.p.res.Len)}, nil
	}
	h, st, err := r.p.Parse(buf)
	switch st {
	case NeedMore:
		return Step{}, nil
	case Malformed:
		return Step{}, err
	}
	r.framing = Framing{}
	if !h.H2Preface {
		if r.framing, err = requestFraming(buf[:h.Len], h.Version); err != nil {
			return Step{}, err
		}
	}
	r.state = headDone
	return Step{StepHead, int64(h.Len)}, nil
}

// Head is the request head Next found (StepHead): method, version, length,
// CONNECT and preface flags; its host once Resolve has read it.
func (r *Requests) Head() *Head { return &r.p.res }

// Framing is the framing of the head Next found.
func (r *Requests) Framing() Framing { return r.framing }

// HostValue returns the raw Host value of the head Next found, in buf,
// when that value alone names the request's host (an origin- or
// asterisk-form target, not CONNECT): a caller that saw the same bytes
// before knows the host they name.
func (r *Requests) HostValue(buf []byte) ([]byte, bool) {
	if r.state != headDone || !r.p.hasHost || r.p.res.H2Preface || r.p.res.Method == "CONNECT" {
		return nil, false
	}
	t := r.p.target.of(buf)
	if t[0] != '/' && (len(t) != 1 || t[0] != '*') {
		return nil, false
	}
	return r.p.host.of(buf), true
}

// Resolve reads the host of the head Next found in buf (as Parse does: the
// Host header, an absolute-form or CONNECT target that must agree with it)
// and returns the complete head. An error means the head is malformed.
func (r *Requests) Resolve(buf []byte) (*Head, error) {
	if r.p.res.H2Preface {
		return &r.p.res, nil
	}
	return &r.p.res, r.p.resolveTarget(buf)
}

// Advance takes the n bytes the caller forwarded: the whole head, all of a
// framing step, or up to N bytes of a data step.
func (r *Requests) Advance(n int64) {
	switch r.state {
	case headDone:
		r.body.start(r.framing, r.limit)
		r.state = inBody
	case inBody:
		r.body.advance(n)
	}
	if r.state == inBody && r.body.done() {
		r.state = inHead
		r.p = Parser{limit: r.limit, deferTarget: true}
	}
}

// AtBoundary reports whether no part of a request has been taken since
// the last one ended: the stream is between two requests.
func (r *Requests) AtBoundary() bool { return r.state == inHead }

// resolveTarget reads the target and Host of a head parsed in b.
func (p *Parser) resolveTarget(b []byte) error {
	target, host := p.target.of(b), p.host.of(b)
	p.work += len(target) + len(host)
	return resolveTarget(&p.res, target, host, p.hasHost)
}

package h1relay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
)

// pumpRequests forwards the client's requests upstream. Each head is read
// whole and judged (judgeHead) before a byte of it is forwarded; the bytes
// judged so far (rbuf's first fwd) go out in one write before the pump
// waits for anything. Bodies go by their framing: chunk-size lines and
// trailers checked in user space, payload spliced by its length. After a
// refused request nothing more is read from the client; after a request
// that closes the connection or asks to upgrade, nothing more is read
// until the response says how the connection goes on.
func (r *Conn) pumpRequests() (sent int64, err error) {
	for {
		step, err := r.req.Next(r.rbuf.bytes()[r.fwd:])
		if err != nil {
			return sent, r.malformed(&sent, err)
		}
		switch step.Kind {
		case httphead.StepMore:
			if err := r.flushUp(&sent); err != nil {
				return sent, err
			}
			if done, err := r.readClient(); done || err != nil {
				return sent, err
			}
			continue
		case httphead.StepHead:
			if !r.takeHead(&sent, step.N) {
				return sent, nil
			}
		case httphead.StepFraming:
			r.fwd += int(step.N)
			r.req.Advance(step.N)
		case httphead.StepData:
			if done, err := r.bodyUp(&sent, step.N); done || err != nil {
				return sent, err
			}
		default:
			return sent, fmt.Errorf("request framing: unexpected step %d", step.Kind)
		}
		if r.req.AtBoundary() {
			if done, err := r.requestEnded(&sent); done || err != nil {
				return sent, err
			}
		}
	}
}

// takeHead judges the head Next found and, if it may go, queues it as in
// flight and takes it for forwarding; false when it was refused (answered
// in its turn) or nothing more can be answered.
func (r *Conn) takeHead(sent *int64, n int64) bool {
	if r.timed {
		_ = r.c.SetReadDeadline(time.Time{})
		r.timed = false
	}
	flags, ok := r.judgeHead()
	if ok && r.fwd > 0 && r.queueFull() {
		// The requests already judged must go out before this one waits
		// for their responses.
		ok = r.flushUp(sent) == nil
	}
	if !ok || !r.push(flags) {
		_ = r.flushUp(sent) // the requests before it; never this one's bytes
		return false
	}
	r.requests++
	r.awaiting = flags&flagUpgrade != 0
	r.fwd += int(n)
	r.req.Advance(n)
	return true
}

// requestEnded runs when a request has been taken whole: after one that
// closes the connection the pump stops reading; after an upgrade request
// it waits for the verdict, and splices the rest of the connection as it
// is once the server switched protocols.
func (r *Conn) requestEnded(sent *int64) (done bool, err error) {
	closes := r.req.Framing().Close
	if !closes && !r.awaiting {
		return false, nil
	}
	if err := r.flushUp(sent); err != nil {
		return true, err
	}
	if closes {
		return true, nil
	}
	r.awaiting = false
	if !r.awaitUpgrade() {
		return false, nil
	}
	n, err := spliceRest(&r.rbuf, r.up, r.toUp)
	*sent += n
	return true, err
}

// bodyUp forwards up to n payload bytes: those already read, else n
// spliced from the client. done: the client ended inside the body (the
// upstream is half-closed as the client is).
func (r *Conn) bodyUp(sent *int64, n int64) (done bool, err error) {
	if held := len(r.rbuf.bytes()) - r.fwd; held > 0 {
		k := min(n, int64(held))
		r.fwd += int(k)
		r.req.Advance(k)
		return false, nil
	}
	if err := r.flushUp(sent); err != nil {
		return true, err
	}
	m, err := r.toUp.N(n)
	*sent += m
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true, r.up.CloseWrite()
	}
	if err != nil {
		return true, fmt.Errorf("request body: %w", err)
	}
	r.req.Advance(n)
	return false, nil
}

// flushUp writes the bytes judged so far upstream.
func (r *Conn) flushUp(sent *int64) error {
	if r.fwd == 0 {
		return nil
	}
	n, err := r.up.Write(r.rbuf.bytes()[:r.fwd])
	*sent += int64(n)
	r.rbuf.consume(r.fwd)
	r.fwd = 0
	if err != nil {
		return fmt.Errorf("write upstream: %w", err)
	}
	return nil
}

// readClient reads what the client sent next. A head that does not come
// whole in one read is bounded by listener.peek_timeout, as the first one
// is. At the client's EOF the upstream is half-closed (a head cut short is
// dropped: it was never judged) and the pump is done.
func (r *Conn) readClient() (done bool, err error) {
	if r.rbuf.full() {
		return true, fmt.Errorf("request framing: %d bytes without a decision", len(r.rbuf.bytes()))
	}
	if !r.timed && r.req.AtBoundary() && len(r.rbuf.bytes()) > 0 {
		r.timed = true
		_ = r.c.SetReadDeadline(time.Now().Add(r.cfg.HeadTimeout))
	}
	n, err := r.toUp.Read(&r.rbuf)
	r.rbuf.w += n
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, io.EOF):
		return true, r.up.CloseWrite()
	case r.timed && errors.Is(err, os.ErrDeadlineExceeded):
		r.refuse(r.judge.Unreadable(fmt.Errorf("%w in %v", ErrHeadTimeout, r.cfg.HeadTimeout), false))
		return true, nil
	}
	return true, fmt.Errorf("read client: %w", err)
}

// malformed handles a request Next could not read: a head is refused like
// one of a first request (the Judge's refusal, in its turn); inside a
// body, part of the request is upstream already, so the connection is
// reset.
func (r *Conn) malformed(sent *int64, err error) error {
	if !r.req.AtBoundary() {
		r.judge.Unreadable(err, true)
		return fmt.Errorf("request body framing: %w", err)
	}
	if err := r.flushUp(sent); err != nil {
		return err
	}
	r.refuse(r.judge.Unreadable(err, false))
	return nil
}

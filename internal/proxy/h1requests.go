package proxy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/policy"
)

// pumpRequests forwards the client's requests upstream. Each head is read
// whole and judged (judgeHead) before a byte of it is forwarded; the bytes
// judged so far (rbuf's first fwd) go out in one write before the pump
// waits for anything. Bodies go by their framing: chunk-size lines and
// trailers checked in user space, payload spliced by its length. After a
// refused request nothing more is read from the client; after a request
// that closes the connection or asks to upgrade, nothing more is read
// until the response says how the connection goes on.
func (h *h1conn) pumpRequests() (sent int64, err error) {
	for {
		step, err := h.req.Next(h.rbuf.bytes()[h.fwd:])
		if err != nil {
			return sent, h.malformed(&sent, err)
		}
		switch step.Kind {
		case httphead.StepMore:
			if err := h.flushUp(&sent); err != nil {
				return sent, err
			}
			if done, err := h.readClient(); done || err != nil {
				return sent, err
			}
			continue
		case httphead.StepHead:
			if !h.takeHead(&sent, step.N) {
				return sent, nil
			}
		case httphead.StepFraming:
			h.fwd += int(step.N)
			h.req.Advance(step.N)
		case httphead.StepData:
			if done, err := h.bodyUp(&sent, step.N); done || err != nil {
				return sent, err
			}
		default:
			return sent, fmt.Errorf("request framing: unexpected step %d", step.Kind)
		}
		if h.req.AtBoundary() {
			if done, err := h.requestEnded(&sent); done || err != nil {
				return sent, err
			}
		}
	}
}

// takeHead judges the head Next found and, if it may go, queues it as in
// flight and takes it for forwarding; false when it was refused (answered
// in its turn) or nothing more can be answered.
func (h *h1conn) takeHead(sent *int64, n int64) bool {
	if h.timed {
		_ = h.c.SetReadDeadline(time.Time{})
		h.timed = false
	}
	flags, ok := h.judgeHead()
	if ok && h.fwd > 0 && h.queueFull() {
		// The requests already judged must go out before this one waits
		// for their responses.
		ok = h.flushUp(sent) == nil
	}
	if !ok || !h.push(flags) {
		_ = h.flushUp(sent) // the requests before it; never this one's bytes
		return false
	}
	h.rec.requests++
	h.awaiting = flags&flagUpgrade != 0
	h.fwd += int(n)
	h.req.Advance(n)
	return true
}

// requestEnded runs when a request has been taken whole: after one that
// closes the connection the pump stops reading; after an upgrade request
// it waits for the verdict, and splices the rest of the connection as it
// is once the server switched protocols.
func (h *h1conn) requestEnded(sent *int64) (done bool, err error) {
	closes := h.req.Framing().Close
	if !closes && !h.awaiting {
		return false, nil
	}
	if err := h.flushUp(sent); err != nil {
		return true, err
	}
	if closes {
		return true, nil
	}
	h.awaiting = false
	if !h.awaitUpgrade() {
		return false, nil
	}
	n, err := spliceRest(&h.rbuf, h.up, h.toUp)
	*sent += n
	return true, err
}

// bodyUp forwards up to n payload bytes: those already read, else n
// spliced from the client. done: the client ended inside the body (the
// upstream is half-closed as the client is).
func (h *h1conn) bodyUp(sent *int64, n int64) (done bool, err error) {
	if held := len(h.rbuf.bytes()) - h.fwd; held > 0 {
		k := min(n, int64(held))
		h.fwd += int(k)
		h.req.Advance(k)
		return false, nil
	}
	if err := h.flushUp(sent); err != nil {
		return true, err
	}
	m, err := h.toUp.N(n)
	*sent += m
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true, h.up.CloseWrite()
	}
	if err != nil {
		return true, fmt.Errorf("request body: %w", err)
	}
	h.req.Advance(n)
	return false, nil
}

// flushUp writes the bytes judged so far upstream.
func (h *h1conn) flushUp(sent *int64) error {
	if h.fwd == 0 {
		return nil
	}
	n, err := h.up.Write(h.rbuf.bytes()[:h.fwd])
	*sent += int64(n)
	h.rbuf.consume(h.fwd)
	h.fwd = 0
	if err != nil {
		return fmt.Errorf("write upstream: %w", err)
	}
	return nil
}

// readClient reads what the client sent next. A head that does not come
// whole in one read is bounded by listener.peek_timeout, as the first one
// is. At the client's EOF the upstream is half-closed (a head cut short is
// dropped: it was never judged) and the pump is done.
func (h *h1conn) readClient() (done bool, err error) {
	if h.rbuf.full() {
		return true, fmt.Errorf("request framing: %d bytes without a decision", len(h.rbuf.bytes()))
	}
	if !h.timed && h.req.AtBoundary() && len(h.rbuf.bytes()) > 0 {
		h.timed = true
		_ = h.c.SetReadDeadline(time.Now().Add(h.st.peekOpts.Timeout))
	}
	n, err := h.toUp.Read(&h.rbuf)
	h.rbuf.w += n
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, io.EOF):
		return true, h.up.CloseWrite()
	case h.timed && errors.Is(err, os.ErrDeadlineExceeded):
		d := policy.Deny(h.t.compiled, h.rec.orig, policy.CodePeekTimeout,
			fmt.Sprintf("no complete request head in %v", h.st.peekOpts.Timeout))
		h.refuse(d, "")
		return true, nil
	}
	return true, fmt.Errorf("read client: %w", err)
}

// malformed handles a request Next could not read: a head is refused like
// one of a first request (a 403 in its turn); inside a body, part of the
// request is upstream already, so the connection is reset.
func (h *h1conn) malformed(sent *int64, err error) error {
	code := policy.CodeMalformed
	if errors.Is(err, httphead.ErrTooLarge) {
		code = policy.CodeHeadTooLarge
	}
	d := policy.Deny(h.t.compiled, h.rec.orig, code, err.Error())
	if !h.req.AtBoundary() {
		h.s.logRequest(h, &d, "")
		return fmt.Errorf("request body framing: %w", err)
	}
	if err := h.flushUp(sent); err != nil {
		return err
	}
	h.refuse(d, "")
	return nil
}

package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// pumpResponses forwards the upstream's responses to the client, reading
// each head for its framing (the request it answers says whether it was
// HEAD) and splicing each body by its length. Interim responses (1xx)
// precede the final one; a 101 to an upgrade request turns the rest of the
// connection into a plain splice, and to any other request ends it. When
// the oldest request in flight is a refusal, its 403 goes out and the
// connection ends.
func (h *h1conn) pumpResponses() (sent int64, err error) {
	defer h.responsesDone()
	final := false // the response under way is a final one (not 1xx)
	for {
		flags, _ := h.front()
		if h.resp.AtBoundary() && flags&flagRefusal != 0 {
			if err := h.flushDown(&sent); err != nil {
				return sent, err
			}
			return sent + h.answerRefusal(), nil
		}
		step, err := h.resp.Next(h.wbuf.bytes()[h.wfwd:], flags&flagHEAD != 0)
		if err != nil {
			return sent, fmt.Errorf("response framing: %w", err)
		}
		switch step.Kind {
		case httphead.StepMore:
			if err := h.flushDown(&sent); err != nil {
				return sent, err
			}
			if done, err := h.readUpstream(); done || err != nil {
				return sent, err
			}
			continue
		case httphead.StepHead:
			status := h.resp.Status()
			h.wfwd += int(step.N)
			h.resp.Advance(step.N)
			if status == 101 {
				return h.switched(&sent, flags)
			}
			final = status >= 200
		case httphead.StepFraming:
			h.wfwd += int(step.N)
			h.resp.Advance(step.N)
		case httphead.StepData:
			if done, err := h.bodyDown(&sent, step.N); done || err != nil {
				return sent, err
			}
		case httphead.StepRest:
			if err := h.flushDown(&sent); err != nil {
				return sent, err
			}
			n, err := spliceRest(&h.wbuf, h.c, h.toCl)
			return sent + n, err
		}
		if final && h.resp.AtBoundary() {
			final = false
			if flags&flagUpgrade != 0 {
				h.decideUpgrade(false)
			}
			h.pop()
		}
	}
}

// switched follows a 101 Switching Protocols: to the upgrade request in
// flight, the rest of the connection is spliced as it is both ways; to any
// other request (an Upgrade egressfw does not follow, or none), the
// connection ends.
func (h *h1conn) switched(sent *int64, flags uint8) (int64, error) {
	if err := h.flushDown(sent); err != nil {
		return *sent, err
	}
	if flags&flagUpgrade == 0 {
		return *sent, errors.New("101 Switching Protocols to a request that did not ask for an upgrade egressfw follows")
	}
	h.decideUpgrade(true)
	n, err := spliceRest(&h.wbuf, h.c, h.toCl)
	return *sent + n, err
}

// bodyDown forwards up to n payload bytes: those already read, else n
// spliced from the upstream. done: the upstream ended inside the body (the
// client's side is half-closed as the upstream's is).
func (h *h1conn) bodyDown(sent *int64, n int64) (done bool, err error) {
	if held := len(h.wbuf.bytes()) - h.wfwd; held > 0 {
		k := min(n, int64(held))
		h.wfwd += int(k)
		h.resp.Advance(k)
		return false, nil
	}
	if err := h.flushDown(sent); err != nil {
		return true, err
	}
	m, err := h.toCl.N(n)
	*sent += m
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true, h.c.CloseWrite()
	}
	if err != nil {
		return true, fmt.Errorf("response body: %w", err)
	}
	h.resp.Advance(n)
	return false, nil
}

// flushDown writes the response bytes read so far to the client.
func (h *h1conn) flushDown(sent *int64) error {
	if h.wfwd == 0 {
		return nil
	}
	n, err := h.c.Write(h.wbuf.bytes()[:h.wfwd])
	*sent += int64(n)
	h.wbuf.consume(h.wfwd)
	h.wfwd = 0
	if err != nil {
		return fmt.Errorf("write client: %w", err)
	}
	return nil
}

// readUpstream reads what the upstream sent next. At its EOF (or when the
// request side, refusing with nothing in flight, stopped the reading) the
// pump answers a pending refusal or half-closes the client.
func (h *h1conn) readUpstream() (done bool, err error) {
	if h.wbuf.full() {
		return true, fmt.Errorf("response framing: %d bytes without a decision", len(h.wbuf.bytes()))
	}
	n, err := h.toCl.Read(&h.wbuf)
	h.wbuf.w += n
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, io.EOF):
		return true, fmt.Errorf("read upstream: %w", err)
	}
	if flags, ok := h.front(); ok && flags&flagRefusal != 0 && h.resp.AtBoundary() {
		h.answerRefusal()
		return true, nil
	}
	return true, h.c.CloseWrite()
}

// answerRefusal sends the refused request's 403 and ends the client's
// side: half-closed, then drained a little so that the close does not
// reset the answer in flight (as closeGracefully does).
func (h *h1conn) answerRefusal() int64 {
	h.mu.Lock()
	answer := h.answer
	h.mu.Unlock()
	_ = h.c.SetWriteDeadline(time.Now().Add(time.Second))
	n, _ := h.c.Write(answer)
	_ = h.c.CloseWrite()
	_ = h.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var buf [512]byte
	for i := 0; i < 64; i++ {
		if _, err := h.c.Read(buf[:]); err != nil {
			break
		}
	}
	return int64(n)
}

// spliceRest sends what buf holds to dst, then splices the rest of the
// source (s) to it until EOF, and half-closes dst.
func spliceRest(buf *h1buf, dst *net.TCPConn, s *tproxy.Splicer) (int64, error) {
	var sent int64
	if held := buf.bytes(); len(held) > 0 {
		n, err := dst.Write(held)
		sent += int64(n)
		if err != nil {
			return sent, fmt.Errorf("write: %w", err)
		}
	}
	buf.release()
	n, err := s.All()
	sent += n
	if err != nil {
		return sent, err
	}
	return sent, dst.CloseWrite()
}

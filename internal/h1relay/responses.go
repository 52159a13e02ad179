package h1relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/refuse"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// pumpResponses forwards the upstream's responses to the client, reading
// each head for its framing (the request it answers says whether it was
// HEAD) and splicing each body by its length. Interim responses (1xx)
// precede the final one; a 101 to an upgrade request turns the rest of the
// connection into a plain splice, and to any other request ends it. When
// the oldest request in flight is a refusal, its answer goes out and the
// connection ends.
func (r *Conn) pumpResponses() (sent int64, err error) {
	defer r.responsesDone()
	final := false // the response under way is a final one (not 1xx)
	for {
		flags, _ := r.front()
		if r.resp.AtBoundary() && flags&flagRefusal != 0 {
			if err := r.flushDown(&sent); err != nil {
				return sent, err
			}
			return sent + r.answerRefusal(), nil
		}
		step, err := r.resp.Next(r.wbuf.bytes()[r.wfwd:], flags&flagHEAD != 0)
		if err != nil {
			return sent, fmt.Errorf("response framing: %w", err)
		}
		switch step.Kind {
		case httphead.StepMore:
			if err := r.flushDown(&sent); err != nil {
				return sent, err
			}
			if done, err := r.readUpstream(); done || err != nil {
				return sent, err
			}
			continue
		case httphead.StepHead:
			status := r.resp.Status()
			r.wfwd += int(step.N)
			r.resp.Advance(step.N)
			if status == 101 {
				return r.switched(&sent, flags)
			}
			final = status >= 200
		case httphead.StepFraming:
			r.wfwd += int(step.N)
			r.resp.Advance(step.N)
		case httphead.StepData:
			if done, err := r.bodyDown(&sent, step.N); done || err != nil {
				return sent, err
			}
		case httphead.StepRest:
			if err := r.flushDown(&sent); err != nil {
				return sent, err
			}
			n, err := spliceRest(&r.wbuf, r.c, r.toCl)
			return sent + n, err
		}
		if final && r.resp.AtBoundary() {
			final = false
			if flags&flagUpgrade != 0 {
				r.decideUpgrade(false)
			}
			r.pop()
		}
	}
}

// switched follows a 101 Switching Protocols: to the upgrade request in
// flight, the rest of the connection is spliced as it is both ways; to any
// other request (an Upgrade egressfw does not follow, or none), the
// connection ends.
func (r *Conn) switched(sent *int64, flags uint8) (int64, error) {
	if err := r.flushDown(sent); err != nil {
		return *sent, err
	}
	if flags&flagUpgrade == 0 {
		return *sent, errors.New("101 Switching Protocols to a request that did not ask for an upgrade egressfw follows")
	}
	r.decideUpgrade(true)
	n, err := spliceRest(&r.wbuf, r.c, r.toCl)
	return *sent + n, err
}

// bodyDown forwards up to n payload bytes: those already read, else n
// spliced from the upstream. done: the upstream ended inside the body (the
// client's side is half-closed as the upstream's is).
func (r *Conn) bodyDown(sent *int64, n int64) (done bool, err error) {
	if held := len(r.wbuf.bytes()) - r.wfwd; held > 0 {
		k := min(n, int64(held))
		r.wfwd += int(k)
		r.resp.Advance(k)
		return false, nil
	}
	if err := r.flushDown(sent); err != nil {
		return true, err
	}
	m, err := r.toCl.N(n)
	*sent += m
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true, r.c.CloseWrite()
	}
	if err != nil {
		return true, fmt.Errorf("response body: %w", err)
	}
	r.resp.Advance(n)
	return false, nil
}

// flushDown writes the response bytes read so far to the client.
func (r *Conn) flushDown(sent *int64) error {
	if r.wfwd == 0 {
		return nil
	}
	n, err := r.c.Write(r.wbuf.bytes()[:r.wfwd])
	*sent += int64(n)
	r.wbuf.consume(r.wfwd)
	r.wfwd = 0
	if err != nil {
		return fmt.Errorf("write client: %w", err)
	}
	return nil
}

// readUpstream reads what the upstream sent next. At its EOF (or when the
// request side, refusing with nothing in flight, stopped the reading) the
// pump answers a pending refusal or half-closes the client.
func (r *Conn) readUpstream() (done bool, err error) {
	if r.wbuf.full() {
		return true, fmt.Errorf("response framing: %d bytes without a decision", len(r.wbuf.bytes()))
	}
	n, err := r.toCl.Read(&r.wbuf)
	r.wbuf.w += n
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, io.EOF):
		return true, fmt.Errorf("read upstream: %w", err)
	}
	if flags, ok := r.front(); ok && flags&flagRefusal != 0 && r.resp.AtBoundary() {
		r.answerRefusal()
		return true, nil
	}
	return true, r.c.CloseWrite()
}

// answerRefusal sends the refused request's answer and ends the client's
// side: half-closed, then drained a little so that the close does not
// reset the answer in flight.
func (r *Conn) answerRefusal() int64 {
	r.mu.Lock()
	answer := r.answer
	r.mu.Unlock()
	_ = r.c.SetWriteDeadline(time.Now().Add(time.Second))
	n, _ := r.c.Write(answer)
	refuse.Drain(r.c)
	return int64(n)
}

// spliceRest sends what buf holds to dst, then splices the rest of the
// source (s) to it until EOF, and half-closes dst.
func spliceRest(buf *buffer, dst *net.TCPConn, s *tproxy.Splicer) (int64, error) {
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

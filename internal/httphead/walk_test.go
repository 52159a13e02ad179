package httphead

import (
	"errors"
	"fmt"
)

// seen is one message a walk found: a request's method and host or a
// response's status, and the payload of its body (framing removed).
type seen struct {
	Method string
	Host   string // name or address, "" when none
	Port   uint16
	Status int
	Body   string
	// Complete: the walk found its end (not cut short by the end of the
	// input or a refusal inside its body).
	Complete bool
}

func (s seen) String() string {
	if s.Status != 0 {
		return fmt.Sprintf("%d body %q", s.Status, s.Body)
	}
	return fmt.Sprintf("%s %s:%d body %q", s.Method, s.Host, s.Port, s.Body)
}

// How a walk ended.
const (
	endEOF     = "eof"     // every byte taken, between two messages
	endPartial = "partial" // the input ended inside a message
	endRefused = "refused" // malformed: nothing more is forwarded
	endStopped = "stopped" // the relay stops reading here (Connection: close, upgrade, CONNECT, preface)
)

// arrivals hands out the input as reads of the sizes cut returns.
type arrivals struct {
	b     []byte
	avail int
	cut   func() int
}

func (a *arrivals) more() bool {
	if a.avail == len(a.b) {
		return false
	}
	a.avail = min(len(a.b), a.avail+max(1, a.cut()))
	return true
}

// take moves k payload bytes from pos: those that arrived, else (as the
// relay splices) straight from what is still to come. It returns how many.
func (a *arrivals) take(pos int, n int64) int {
	if a.avail > pos {
		return int(min(n, int64(a.avail-pos)))
	}
	k := int(min(n, int64(len(a.b)-pos)))
	a.avail = pos + k
	return k
}

// walkRequests runs Requests over b as the relay does, the bytes arriving
// in reads of the sizes cut returns: each head resolved, each body's payload
// collected, stopping where the relay stops reading.
func walkRequests(b []byte, limit int, cut func() int) (out []seen, end string, err error) {
	var r Requests
	r.Init(limit)
	a := &arrivals{b: b, cut: cut}
	pos := 0
	var cur *seen
	for {
		step, err := r.Next(b[pos:a.avail])
		if err != nil {
			return out, endRefused, err
		}
		switch step.Kind {
		case StepMore:
			if !a.more() {
				if pos == len(b) && r.AtBoundary() {
					return out, endEOF, nil
				}
				return out, endPartial, nil
			}
			continue
		case StepHead:
			h, err := r.Resolve(b[pos:a.avail])
			if err != nil {
				return out, endRefused, err
			}
			out = append(out, seen{Method: h.Method, Host: h.Host(), Port: h.Port})
			cur = &out[len(out)-1]
			if f := r.Framing(); h.CONNECT || h.H2Preface || f.Upgrade == UpgradeH2C || f.Upgrade == UpgradeWebSocket {
				return out, endStopped, nil
			}
		case StepData:
			k := a.take(pos, step.N)
			if k == 0 {
				return out, endPartial, nil
			}
			cur.Body += string(b[pos : pos+k])
			step.N = int64(k)
		case StepRest:
			return out, endRefused, errors.New("a request body until close")
		}
		pos += int(step.N)
		r.Advance(step.N)
		if r.AtBoundary() && cur != nil {
			cur.Complete = true
			if r.framingClosed() {
				return out, endStopped, nil
			}
		}
	}
}

// framingClosed reports whether the last request asked to close the
// connection after it.
func (r *Requests) framingClosed() bool { return r.framing.Close }

// walkResponses runs Responses over b, the requests being HEAD where
// isHEAD says so (by index, false beyond), as the relay does.
func walkResponses(b []byte, isHEAD func(int) bool, cut func() int) (out []seen, end string, err error) {
	var r Responses
	r.Init()
	a := &arrivals{b: b, cut: cut}
	pos, final := 0, 0 // final: responses to requests (not 1xx) so far
	var cur *seen
	for {
		step, err := r.Next(b[pos:a.avail], isHEAD(final))
		if err != nil {
			return out, endRefused, err
		}
		switch step.Kind {
		case StepMore:
			if !a.more() {
				if pos == len(b) && r.AtBoundary() {
					return out, endEOF, nil
				}
				return out, endPartial, nil
			}
			continue
		case StepHead:
			out = append(out, seen{Status: r.Status()})
			cur = &out[len(out)-1]
			if r.Status() == 101 {
				return out, endStopped, nil
			}
			if r.Status() >= 200 {
				final++
			}
		case StepData:
			k := a.take(pos, step.N)
			if k == 0 {
				return out, endPartial, nil
			}
			cur.Body += string(b[pos : pos+k])
			step.N = int64(k)
		case StepRest:
			cur.Body, cur.Complete = cur.Body+string(b[pos:]), true
			return out, endEOF, nil
		}
		pos += int(step.N)
		r.Advance(step.N)
		if r.AtBoundary() && cur != nil {
			cur.Complete = true
		}
	}
}

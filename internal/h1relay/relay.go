package h1relay

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// MaxInFlight bounds the requests of one connection forwarded and not yet
// answered: a client that pipelines more waits (its bytes wait in the
// kernel) until responses come back.
const MaxInFlight = 16

// Flags of a request in flight: what its response's framing depends on.
const (
	flagHEAD    uint8 = 1 << iota // a HEAD request: its response has no body
	flagUpgrade                   // an Upgrade (websocket) that a 101 switches to a plain splice
	flagRefusal                   // not a request: the refusal of one, answered in its turn
)

// ErrHeadTimeout is what Judge.Unreadable is told of a later request head
// that did not come whole within Config.HeadTimeout.
var ErrHeadTimeout = errors.New("no complete request head")

// Judge decides, for the relay of one connection, every request after the
// first (which its caller judged before the dial), and words the answer to
// a refused one. Its methods run on the request pump's goroutine, one at a
// time, before any byte of the request they are about is forwarded.
type Judge interface {
	// Request judges the head req.Next just found at the start of buf
	// (the client's bytes not yet forwarded). nil lets the request go;
	// otherwise the client gets these bytes instead, in its turn after the
	// responses to the requests before it, and the connection ends.
	Request(req *httphead.Requests, buf []byte) (refusal []byte)
	// Unreadable is told of a request the relay could not read: err wraps
	// httphead.ErrMalformed or httphead.ErrTooLarge, or ErrHeadTimeout.
	// At a head (inBody false) the returned bytes answer it as Request's
	// refusal does; inside a body part of the request is upstream already,
	// so the connection is reset and nothing is answered.
	Unreadable(err error, inBody bool) (refusal []byte)
}

// Config bounds one connection's relay.
type Config struct {
	MaxHead     int           // a request head's size, and a chunked trailer section's
	HeadTimeout time.Duration // for a later head that does not come whole in one read
	Idle        time.Duration // without a byte either way (tproxy.Relay)
}

// Conn is the relay of one plain-HTTP connection (HTTP/1.x): every
// request the client sends is read and judged in user space (Judge)
// before any byte of it is forwarded, and its body spliced by its length;
// responses are read for their framing only, to know where the next one
// starts. Two pumps run it under tproxy.Relay: pumpRequests (client to
// upstream, on the connection's goroutine) and pumpResponses (upstream to
// client). They share only the queue of requests in flight (what each
// response answers) and the outcome of an upgrade, under mu.
//
// A refused request is answered with the Judge's refusal, after the
// responses to the requests before it, and ends the connection; none of
// its bytes, and none after it, reach the upstream. A connection that
// upgrades to WebSocket after a 101 is spliced as it is.
//
// The zero value is not ready: call Init, then Run once.
type Conn struct {
	judge Judge
	cfg   Config
	c     *net.TCPConn // the client
	up    *net.TCPConn // the upstream

	// The request side's (pumpRequests).
	req      httphead.Requests
	rbuf     buffer // client bytes read and not yet forwarded
	fwd      int    // of them, those judged and due upstream
	toUp     *tproxy.Splicer
	first    bool // the next head is the first one, judged before the dial
	requests int  // requests taken (the first included)
	timed    bool // a read deadline bounds the head being read
	awaiting bool // the request being taken asks to upgrade: wait for the verdict after it

	// The response side's (pumpResponses).
	resp   httphead.Responses
	wbuf   buffer
	wfwd   int
	toCl   *tproxy.Splicer
	answer []byte // the refusal of the refused request

	mu       sync.Mutex
	cond     sync.Cond
	queue    [MaxInFlight]uint8 // flags of the requests in flight, from qHead
	qHead    int
	qLen     int
	upgraded int8 // the verdict on an upgrade request: 1 switched, -1 declined
	respDone bool // the response side has returned
}

// Init readies the relay of the connection c, whose first bytes (prefix)
// hold the first request's head, and returns that head's framing, before
// the caller judges it: an error is a head two parsers could read
// differently (or not whole), to be refused as malformed like one the
// peek could not read.
func (r *Conn) Init(c *net.TCPConn, prefix []byte, cfg Config, j Judge) (httphead.Framing, error) {
	*r = Conn{judge: j, cfg: cfg, c: c, first: true}
	r.cond.L = &r.mu
	r.req.Init(cfg.MaxHead)
	r.resp.Init()
	r.rbuf = buffer{b: prefix, w: len(prefix), max: max(cfg.MaxHead, httphead.MaxChunkLine)}
	r.wbuf = buffer{max: httphead.MaxResponseHead}
	step, err := r.req.Next(prefix)
	if err == nil && step.Kind != httphead.StepHead {
		err = fmt.Errorf("%w: http: the first request head is not complete", httphead.ErrMalformed)
	}
	return r.req.Framing(), err
}

// HostValue is the raw Host value of the first request (after Init) as
// httphead.Requests.HostValue reads it.
func (r *Conn) HostValue() ([]byte, bool) { return r.req.HostValue(r.rbuf.bytes()) }

// Requests is the number of requests taken so far, the first included:
// while the Judge decides one, those before it.
func (r *Conn) Requests() int { return r.requests }

// Run relays until both directions are done and returns what
// tproxy.Relay does. The upstream is connected and the first request
// allowed.
func (r *Conn) Run(up *net.TCPConn) (sent, received int64, err error) {
	r.up = up
	if r.toUp, err = tproxy.NewSplicer(up, r.c); err == nil {
		r.toCl, err = tproxy.NewSplicer(r.c, up)
	}
	if err != nil {
		up.Close()
		r.c.Close()
		return 0, 0, err
	}
	sent, received, err = tproxy.Relay(r.c, up, r.cfg.Idle, r.pumpRequests, r.pumpResponses)
	r.rbuf.release()
	r.wbuf.release()
	return sent, received, err
}

// judgeHead judges the request head Next found, before any byte of it is
// forwarded, and returns its flags and whether it may go. The first head
// was judged before the dial; a later one is the Judge's. A refused one
// is answered in its turn.
func (r *Conn) judgeHead() (flags uint8, ok bool) {
	if r.first {
		r.first = false
	} else if refusal := r.judge.Request(&r.req, r.rbuf.bytes()[r.fwd:]); refusal != nil {
		r.refuse(refusal)
		return 0, false
	}
	if r.req.Head().Method == "HEAD" {
		flags |= flagHEAD
	}
	// h2c gets here only as a first request or a later one report mode
	// let through: its 101 turns the connection into a splice.
	if u := r.req.Framing().Upgrade; u == httphead.UpgradeWebSocket || u == httphead.UpgradeH2C {
		flags |= flagUpgrade
	}
	return flags, true
}

// refuse queues the refusal of a request, answered in its turn after the
// responses to the requests before it; nothing more is read from the
// client.
func (r *Conn) refuse(answer []byte) {
	r.mu.Lock()
	r.answer = answer
	r.mu.Unlock()
	r.push(flagRefusal)
}

// push queues a request (or a refusal) in flight, waiting while the queue
// is full; false when the response side has ended (nothing more can be
// answered). A refusal with nothing before it wakes the response side,
// which may be waiting for upstream bytes that will not come.
func (r *Conn) push(flags uint8) bool {
	r.mu.Lock()
	for r.qLen == MaxInFlight && !r.respDone {
		r.cond.Wait()
	}
	if r.respDone {
		r.mu.Unlock()
		return false
	}
	r.queue[(r.qHead+r.qLen)%MaxInFlight] = flags
	r.qLen++
	wake := flags&flagRefusal != 0 && r.qLen == 1
	r.mu.Unlock()
	if wake {
		_ = r.up.CloseRead() // the read in progress ends (EOF); nothing more is read upstream
	}
	return true
}

// queueFull reports whether a request must wait for a response before it
// can be in flight.
func (r *Conn) queueFull() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.qLen == MaxInFlight
}

// front returns the flags of the oldest request in flight; ok false when
// none is.
func (r *Conn) front() (flags uint8, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queue[r.qHead], r.qLen > 0
}

// pop ends the oldest request in flight: its final response is through.
func (r *Conn) pop() {
	r.mu.Lock()
	if r.qLen > 0 {
		r.qHead, r.qLen = (r.qHead+1)%MaxInFlight, r.qLen-1
	}
	r.mu.Unlock()
	r.cond.Broadcast()
}

// decideUpgrade records the verdict on the upgrade request in flight.
func (r *Conn) decideUpgrade(switched bool) {
	r.mu.Lock()
	r.upgraded = -1
	if switched {
		r.upgraded = 1
	}
	r.mu.Unlock()
	r.cond.Broadcast()
}

// awaitUpgrade waits for the verdict on the upgrade request just
// forwarded: true once the server switched protocols.
func (r *Conn) awaitUpgrade() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.upgraded == 0 && !r.respDone {
		r.cond.Wait()
	}
	switched := r.upgraded > 0
	r.upgraded = 0
	return switched
}

// responsesDone marks the response side as ended, for a request side that
// waits on it.
func (r *Conn) responsesDone() {
	r.mu.Lock()
	r.respDone = true
	r.mu.Unlock()
	r.cond.Broadcast()
}

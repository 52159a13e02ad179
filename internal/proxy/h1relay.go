package proxy

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/tproxy"
	"github.com/prometheus/client_golang/prometheus"
)

// maxInFlight bounds the requests of one connection forwarded and not yet
// answered: a client that pipelines more waits (its bytes wait in the
// kernel) until responses come back.
const maxInFlight = 16

// Flags of a request in flight: what its response's framing depends on.
const (
	flagHEAD    uint8 = 1 << iota // a HEAD request: its response has no body
	flagUpgrade                   // an Upgrade (websocket) that a 101 switches to a plain splice
	flagRefusal                   // not a request: the 403 for a refused one, answered in its turn
)

// h1conn is the relay of one plain-HTTP connection (HTTP/1.x): every
// request the client sends is read and judged in user space before any
// byte of it is forwarded, with the same decision as the first one (see
// judgeNext), and its body spliced by its length; responses are read for
// their framing only, to know where the next one starts. Two pumps run it
// under tproxy.Relay: pumpRequests (client to upstream, on the connection's
// goroutine) and pumpResponses (upstream to client). They share only the
// queue of requests in flight (what each response answers) and the outcome
// of an upgrade, under mu.
//
// A refused request is answered with the 403 of a refused first request,
// after the responses to the requests before it, and ends the connection;
// none of its bytes, and none after it, reach the upstream. A connection
// that upgrades to WebSocket after a 101 is spliced as it is.
type h1conn struct {
	s    *Proxy
	st   *Snapshot
	t    *tenantState
	rec  *connRecord
	c    *net.TCPConn // the client
	up   *net.TCPConn // the upstream
	idle time.Duration

	// The request side's (pumpRequests).
	req      httphead.Requests
	rbuf     h1buf // client bytes read and not yet forwarded
	fwd      int   // of them, those judged and due upstream
	toUp     *tproxy.Splicer
	memo     hostMemo
	first    bool               // the next head is the first one, judged before the dial
	allowed  prometheus.Counter // later requests allowed (egressfw_http_requests_total)
	timed    bool               // a read deadline bounds the head being read
	awaiting bool               // the request being taken asks to upgrade: wait for the verdict after it

	// The response side's (pumpResponses).
	resp   httphead.Responses
	wbuf   h1buf
	wfwd   int
	toCl   *tproxy.Splicer
	answer []byte // the 403 for the refused request

	mu       sync.Mutex
	cond     sync.Cond
	queue    [maxInFlight]uint8 // flags of the requests in flight, from qHead
	qHead    int
	qLen     int
	upgraded int8 // the verdict on an upgrade request: 1 switched, -1 declined
	respDone bool // the response side has returned
}

// newH1 prepares the relay of an HTTP connection whose first bytes Peek
// read (prefix) and checks the first request's framing, before it is
// judged: a head two parsers could read differently is refused as
// malformed like one Peek could not read.
func newH1(s *Proxy, st *Snapshot, t *tenantState, rec *connRecord, c *net.TCPConn, prefix []byte) (*h1conn, httphead.Framing, error) {
	h := &h1conn{s: s, st: st, t: t, rec: rec, c: c, first: true, idle: st.cfg.Listener.IdleTimeout.Duration}
	h.cond.L = &h.mu
	h.req.Init(st.cfg.Listener.MaxHTTPHeader)
	h.resp.Init()
	h.rbuf = h1buf{b: prefix, w: len(prefix), max: max(st.cfg.Listener.MaxHTTPHeader, httphead.MaxChunkLine)}
	h.wbuf = h1buf{max: httphead.MaxResponseHead}
	step, err := h.req.Next(prefix)
	if err == nil && step.Kind != httphead.StepHead {
		err = fmt.Errorf("%w: http: the first request head is not complete", httphead.ErrMalformed)
	}
	return h, h.req.Framing(), err
}

// run relays until both directions are done and returns what
// tproxy.Relay does. The upstream is connected and the first request
// allowed.
func (h *h1conn) run(up *net.TCPConn) (sent, received int64, err error) {
	h.up = up
	if h.toUp, err = tproxy.NewSplicer(up, h.c); err == nil {
		h.toCl, err = tproxy.NewSplicer(h.c, up)
	}
	if err != nil {
		up.Close()
		h.c.Close()
		return 0, 0, err
	}
	h.memo.first(h)
	sent, received, err = tproxy.Relay(h.c, up, h.idle, h.pumpRequests, h.pumpResponses)
	h.rbuf.release()
	h.wbuf.release()
	return sent, received, err
}

// push queues a request (or a refusal) in flight, waiting while the queue
// is full; false when the response side has ended (nothing more can be
// answered). A refusal with nothing before it wakes the response side,
// which may be waiting for upstream bytes that will not come.
func (h *h1conn) push(flags uint8) bool {
	h.mu.Lock()
	for h.qLen == maxInFlight && !h.respDone {
		h.cond.Wait()
	}
	if h.respDone {
		h.mu.Unlock()
		return false
	}
	h.queue[(h.qHead+h.qLen)%maxInFlight] = flags
	h.qLen++
	wake := flags&flagRefusal != 0 && h.qLen == 1
	h.mu.Unlock()
	if wake {
		_ = h.up.CloseRead() // the read in progress ends (EOF); nothing more is read upstream
	}
	return true
}

// queueFull reports whether a request must wait for a response before it
// can be in flight.
func (h *h1conn) queueFull() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.qLen == maxInFlight
}

// front returns the flags of the oldest request in flight; ok false when
// none is.
func (h *h1conn) front() (flags uint8, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.queue[h.qHead], h.qLen > 0
}

// pop ends the oldest request in flight: its final response is through.
func (h *h1conn) pop() {
	h.mu.Lock()
	if h.qLen > 0 {
		h.qHead, h.qLen = (h.qHead+1)%maxInFlight, h.qLen-1
	}
	h.mu.Unlock()
	h.cond.Broadcast()
}

// decideUpgrade records the verdict on the upgrade request in flight.
func (h *h1conn) decideUpgrade(switched bool) {
	h.mu.Lock()
	h.upgraded = -1
	if switched {
		h.upgraded = 1
	}
	h.mu.Unlock()
	h.cond.Broadcast()
}

// awaitUpgrade waits for the verdict on the upgrade request just
// forwarded: true once the server switched protocols.
func (h *h1conn) awaitUpgrade() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.upgraded == 0 && !h.respDone {
		h.cond.Wait()
	}
	switched := h.upgraded > 0
	h.upgraded = 0
	return switched
}

// responsesDone marks the response side as ended, for a request side that
// waits on it.
func (h *h1conn) responsesDone() {
	h.mu.Lock()
	h.respDone = true
	h.mu.Unlock()
	h.cond.Broadcast()
}

// h1bufSize is the pooled size of a relay buffer: a typical head and the
// start of its body. A buffer grows beyond it (allocated) only for a head
// that needs it, up to its max.
const h1bufSize = 16 << 10

var h1bufs = sync.Pool{New: func() any { b := make([]byte, h1bufSize); return &b }}

// h1buf holds a direction's bytes read and not yet forwarded, b[r:w]. It
// takes its memory from a pool when bytes arrive and gives it back when
// it is empty (tproxy.ReadBuffer), so an idle connection holds none.
type h1buf struct {
	b      []byte
	pooled *[]byte // b's pool entry, if b is one
	r, w   int
	max    int // the most b may grow to
}

func (b *h1buf) bytes() []byte { return b.b[b.r:b.w] }

// consume drops n forwarded bytes.
func (b *h1buf) consume(n int) {
	if b.r += n; b.r == b.w {
		b.r, b.w = 0, 0
	}
}

// full reports whether there is no room for another byte.
func (b *h1buf) full() bool { return b.w-b.r >= b.max }

// Space returns the room after the bytes held, compacting or growing b
// (up to max) when there is none; the caller checks full first.
func (b *h1buf) Space() []byte {
	if b.b == nil {
		b.pooled = h1bufs.Get().(*[]byte)
		b.b, b.r, b.w = *b.pooled, 0, 0
	}
	if b.w == len(b.b) && b.r > 0 {
		b.w, b.r = copy(b.b, b.b[b.r:b.w]), 0
	}
	if b.w == len(b.b) && len(b.b) < b.max {
		grown := make([]byte, min(2*len(b.b), b.max))
		copy(grown, b.b[:b.w])
		if b.pooled != nil {
			h1bufs.Put(b.pooled)
		}
		b.b, b.pooled = grown, nil
	}
	return b.b[b.w:min(len(b.b), b.r+b.max)]
}

// Unused gives an empty buffer back while the connection waits.
func (b *h1buf) Unused() {
	if b.r == b.w {
		b.release()
	}
}

// release drops b's memory, back to the pool if it came from there.
func (b *h1buf) release() {
	if b.pooled != nil {
		h1bufs.Put(b.pooled)
	}
	b.b, b.pooled, b.r, b.w = nil, nil, 0, 0
}

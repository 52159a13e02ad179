package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/egressfw/egressfw/internal/h1relay"
	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/refuse"
	"github.com/egressfw/egressfw/internal/sni"
)

// h1conn is a plain-HTTP connection's relay (h1relay.Conn) with the judge
// of its later requests (h1relay.Judge): each gets the first one's
// decision (judgeNext), is logged when it is not simply allowed, and a
// refused one is answered with the 403 of a refused first request.
type h1conn struct {
	relay h1relay.Conn
	s     *Proxy
	st    *Snapshot
	t     *tenantState
	rec   *connRecord
	memo  hostMemo
}

// newH1 prepares the relay of an HTTP connection whose first bytes Peek
// read (prefix) and checks the first request's framing, before it is
// judged: a head two parsers could read differently is refused as
// malformed like one Peek could not read.
func newH1(s *Proxy, st *Snapshot, t *tenantState, rec *connRecord, c *net.TCPConn, prefix []byte) (*h1conn, httphead.Framing, error) {
	h := &h1conn{s: s, st: st, t: t, rec: rec}
	f, err := h.relay.Init(c, prefix, h1relay.Config{MaxHead: st.cfg.Listener.MaxHTTPHeader,
		HeadTimeout: st.peekOpts.Timeout, Idle: st.cfg.Listener.IdleTimeout.Duration}, h)
	return h, f, err
}

// run relays until both directions are done (h1relay.Conn.Run). The
// upstream is connected and the first request allowed.
func (h *h1conn) run(up *net.TCPConn) (sent, received int64, err error) {
	h.memo.first(h)
	sent, received, err = h.relay.Run(up)
	h.rec.requests = h.relay.Requests()
	return sent, received, err
}

// Request judges a later request head (h1relay.Judge). A head whose Host
// bytes are an earlier allowed request's is allowed at once; otherwise
// judgeNext decides. A refused one is logged and gets its 403.
func (h *h1conn) Request(req *httphead.Requests, buf []byte) []byte {
	if !h.follow() {
		d := policy.Deny(h.t.compiled, h.rec.orig, policy.CodeNoTenant,
			fmt.Sprintf("a reload removed tenant %q; its open connections take no new requests", h.t.name))
		return h.refusal(d, "")
	}
	f := req.Framing()
	if raw, ok := req.HostValue(buf); ok && f.Upgrade != httphead.UpgradeH2C && h.memo.hasRaw(raw) {
		h.t.m.requestsAllowed.Inc()
		return nil
	}
	d, pr, name := h.judgeNext(req, buf, f)
	if d.Allow {
		h.publish(pr, &d)
		if h.s.state.Load() != h.st {
			// A reload overtook the judgement (a lookup can take
			// dns.timeout), and its recheck may have read the published
			// names before this one: judge it again by the running config.
			return h.Request(req, buf)
		}
	}
	switch {
	case d.Allow && d.WouldAllow:
		h.t.m.requestsAllowed.Inc()
	case d.Allow: // report mode: logged, let through
		h.s.logRequest(h, &d, name)
	default:
		return h.refusal(d, name)
	}
	return nil
}

// follow moves the connection to the running snapshot when a reload
// installed one since its last request, so that each request is judged by
// the config running when it arrives: the tenant's policy of that
// snapshot, and no name allowed under the old one is taken on trust. It
// reports false when the reload removed the tenant (no tenant of that
// name holds its slot).
func (h *h1conn) follow() bool {
	st := h.s.state.Load()
	if st == h.st {
		return true
	}
	t := st.tenantOf(h.t.slot.ID, h.t.name)
	if t == nil {
		return false
	}
	h.st, h.t, h.memo = st, t, hostMemo{}
	return true
}

// Unreadable refuses a request the relay could not read (h1relay.Judge):
// a head is answered like a refused first request; one cut inside its
// body is only logged (the relay resets the connection).
func (h *h1conn) Unreadable(err error, inBody bool) []byte {
	code := policy.CodeMalformed
	switch {
	case errors.Is(err, httphead.ErrTooLarge):
		code = policy.CodeHeadTooLarge
	case errors.Is(err, h1relay.ErrHeadTimeout):
		code = policy.CodePeekTimeout
	}
	d := policy.Deny(h.t.compiled, h.rec.orig, code, err.Error())
	if inBody {
		h.s.logRequest(h, &d, "")
		return nil
	}
	return h.refusal(d, "")
}

// refuseH2C refuses a request asking to upgrade to HTTP/2 in the clear, the
// first of a connection or a later one.
func refuseH2C(t *policy.CompiledTenant, orig netip.AddrPort) policy.Decision {
	return policy.Deny(t, orig, policy.CodeH2Preface,
		"Upgrade: h2c asks for HTTP/2 in the clear, whose requests egressfw does not read")
}

// judgeNext is the decision on a later request: what the first request's
// decision would be for it, with the connection's address as the only
// one it may go to (policy.DecideOn). A name an earlier request on the
// connection was allowed is not judged again: its addresses were validated
// and the connection goes to one of them.
func (h *h1conn) judgeNext(req *httphead.Requests, buf []byte, f httphead.Framing) (policy.Decision, policy.Request, string) {
	head, err := req.Resolve(buf)
	if err != nil {
		return policy.Deny(h.t.compiled, h.rec.orig, policy.CodeMalformed, err.Error()), policy.Request{}, ""
	}
	name := head.Host()
	if f.Upgrade == httphead.UpgradeH2C {
		return refuseH2C(h.t.compiled, h.rec.orig), policy.Request{}, name
	}
	r := sni.Result{Kind: sni.KindHTTP, Name: head.Name, Addr: head.Addr, Port: head.Port,
		CONNECT: head.CONNECT, H2Preface: head.H2Preface}
	if d, refused := uncheckable(h.t.compiled, r, h.rec.orig); refused {
		return d, policy.Request{}, name
	}
	raw, _ := req.HostValue(buf)
	pr := requestOf(r, h.rec.orig)
	pr.OrigDst = h.rec.dialed
	if m := h.memo.byName(head.Name); m != nil {
		h.memo.setRaw(raw)
		ans := policy.Answer{Addrs: m.addrs, Aliases: m.aliases}
		return policy.Decision{Allow: true, WouldAllow: true, Name: head.Name, Answer: ans}, pr, name
	}
	// The resolver bounds the lookup (dns.timeout), as for a first request.
	d := h.st.policy.DecideOn(context.Background(), h.t.compiled, pr)
	if d.Allow && d.WouldAllow {
		h.memo.add(head.Name, d.Answer, raw)
	}
	return d, pr, name
}

// publish records, for a reload's recheck, a later request that was let
// through for a name (or literal, or a refusal report mode let through)
// the connection had not carried before, with the answer judged. Only a
// new one costs an allocation; the usual next request repeats the last
// one's. It keeps as many as the relay lets be in flight
// (h1relay.MaxInFlight), so the name of every request whose response may
// still be coming is among them.
func (h *h1conn) publish(req policy.Request, d *policy.Decision) {
	// The same answer too: a name looked up again after a reload may have
	// other addresses or aliases, which a later reload must judge.
	same := func(r policy.Request, j *policy.Decision) bool {
		return r.Name == req.Name && r.Literal == req.Literal && j.Code == d.Code &&
			slices.Equal(j.Answer.Addrs, d.Answer.Addrs) && slices.Equal(j.Answer.Aliases, d.Answer.Aliases)
	}
	if same(h.rec.opened(), &h.rec.verdict) {
		return
	}
	var old []judgedRequest
	if p := h.rec.later.Load(); p != nil {
		old = *p
	}
	for i := range old {
		if same(old[i].req, &old[i].d) {
			return
		}
	}
	old = old[max(0, len(old)+1-h1relay.MaxInFlight):]
	later := append(make([]judgedRequest, 0, len(old)+1), old...)
	later = append(later, judgedRequest{req: req, d: policy.Decision{Code: d.Code, Detail: d.Detail, Answer: d.Answer}})
	h.rec.later.Store(&later)
}

// refusal logs a refused later request and returns the 403 a refused
// first request gets, which the relay sends in its turn.
func (h *h1conn) refusal(d policy.Decision, name string) []byte {
	h.s.logRequest(h, &d, name)
	return []byte(refuse.Forbidden(refuse.Body(h.st.denyFull, d.TenantMessage())))
}

// hostMemo remembers, for one connection, the names its requests were
// allowed (their addresses include the connection's), with the answers
// they were judged on, and the raw Host value of the last one, so that
// the usual next request, which repeats it, is taken without normalising
// or judging it again.
type hostMemo struct {
	raw    [128]byte
	rawLen int // 0: none
	names  [4]memoName
	n      int
}

// memoName is a name a connection's request was allowed, and the answer
// it was judged on (what a reload's recheck judges again).
type memoName struct {
	name    string
	addrs   []netip.Addr
	aliases []string
}

// first remembers the first request, if its decision allowed it.
func (m *hostMemo) first(h *h1conn) {
	if !h.rec.verdict.WouldAllow {
		return
	}
	raw, _ := h.relay.HostValue()
	m.add(h.rec.verdict.Name, h.rec.verdict.Answer, raw)
}

func (m *hostMemo) hasRaw(v []byte) bool {
	return m.rawLen > 0 && string(m.raw[:m.rawLen]) == string(v)
}

func (m *hostMemo) setRaw(v []byte) {
	m.rawLen = 0
	if len(v) <= len(m.raw) {
		m.rawLen = copy(m.raw[:], v)
	}
}

// byName is the remembered name, nil if it is not ("": a literal, never).
func (m *hostMemo) byName(name string) *memoName {
	if name == "" {
		return nil
	}
	for i := range m.names[:min(m.n, len(m.names))] {
		if m.names[i].name == name {
			return &m.names[i]
		}
	}
	return nil
}

// add remembers an allowed name (none for a literal), its answer and its
// raw Host.
func (m *hostMemo) add(name string, answer policy.Answer, raw []byte) {
	m.setRaw(raw)
	if name != "" && m.byName(name) == nil {
		m.names[m.n%len(m.names)] = memoName{name: name, addrs: answer.Addrs, aliases: answer.Aliases}
		m.n++
	}
}

// logRequest counts a later request of a connection that was not simply
// allowed and writes its log line (msg "request"): refused, or let through
// by report mode. Repeated identical denials are folded as a connection's.
func (s *Proxy) logRequest(h *h1conn, d *policy.Decision, name string) {
	decision, reason := d.Outcome(), d.Code.String()
	s.metrics.requests.WithLabelValues(h.t.name, decision).Inc()
	r := h.rec
	ok, suppressed := s.denials.Allow(r.tenant, reason+"\x00"+name+"\x00"+r.orig.String())
	if !ok {
		s.metrics.suppressed.Inc()
		return
	}
	attrs := []slog.Attr{
		slog.String("tenant", r.tenant),
		slog.String("src", r.src.String()),
		slog.String("orig_dst", r.orig.String()),
		slog.String("proto", "http"),
		slog.String("name", name),
		slog.String("decision", decision),
		slog.String("mode", h.t.compiled.Mode().String()), // the running config's, which judged it
		slog.String("reason", reason),
		slog.String("detail", d.Detail),
		slog.Int("request", h.relay.Requests()+1),
		slog.String("dialed", r.dialed.String()),
	}
	attrs = appendAnswer(attrs, &d.Answer)
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed_before", suppressed))
	}
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "request", attrs...)
}

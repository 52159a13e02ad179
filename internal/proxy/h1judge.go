package proxy

import (
	"context"
	"log/slog"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/sni"
)

// judgeHead judges the request head Next found, before any byte of it is
// forwarded, and returns its flags and whether it may go. The first head
// was judged before the dial (open). A later one gets the first one's
// decision (judgeNext): the same policy, resolver and cache, the name
// normalised the same way, and the connection's address must be one that
// decision validated. A refused one is answered (in its turn) and logged.
func (h *h1conn) judgeHead() (flags uint8, ok bool) {
	head, f := h.req.Head(), h.req.Framing()
	if head.Method == "HEAD" {
		flags |= flagHEAD
	}
	if f.Upgrade == httphead.UpgradeWebSocket {
		flags |= flagUpgrade
	}
	if h.first {
		h.first = false
		if f.Upgrade == httphead.UpgradeH2C { // report mode let it through
			flags |= flagUpgrade
		}
		return flags, true
	}
	buf := h.rbuf.bytes()[h.fwd:]
	if raw, ok := h.req.HostValue(buf); ok && f.Upgrade != httphead.UpgradeH2C && h.memo.hasRaw(raw) {
		h.counted(policy.Decision{Allow: true, WouldAllow: true})
		return flags, true
	}
	d, name := h.judgeNext(buf, f)
	switch {
	case d.Allow && d.WouldAllow:
		h.counted(d)
	case d.Allow: // report mode: logged, let through
		h.s.logRequest(h, &d, name)
		if f.Upgrade == httphead.UpgradeH2C {
			flags |= flagUpgrade
		}
	default:
		h.refuse(d, name)
		return 0, false
	}
	return flags, true
}

// judgeNext is the decision on a later request: what the first request's
// decision would be for it, with the connection's address as the only
// one it may go to (policy.DecideOn). A name an earlier request on the
// connection was allowed is not judged again: its addresses were validated
// and the connection goes to one of them.
func (h *h1conn) judgeNext(buf []byte, f httphead.Framing) (policy.Decision, string) {
	head, err := h.req.Resolve(buf)
	if err != nil {
		return policy.Deny(h.t.compiled, h.rec.orig, policy.CodeMalformed, err.Error()), ""
	}
	name := head.Host()
	if f.Upgrade == httphead.UpgradeH2C {
		return policy.Deny(h.t.compiled, h.rec.orig, policy.CodeH2Preface,
			"Upgrade: h2c asks for HTTP/2 in the clear, whose requests egressfw does not read"), name
	}
	r := sni.Result{Kind: sni.KindHTTP, Name: head.Name, Addr: head.Addr, Port: head.Port,
		CONNECT: head.CONNECT, H2Preface: head.H2Preface}
	if d, refused := uncheckable(h.t.compiled, r, h.rec.orig); refused {
		return d, name
	}
	raw, _ := h.req.HostValue(buf)
	if head.Name != "" && h.memo.hasName(head.Name) {
		h.memo.setRaw(raw)
		return policy.Decision{Allow: true, WouldAllow: true, Name: head.Name}, name
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.st.cfg.DNS.Timeout.Duration)
	req := requestOf(r, h.rec.orig)
	req.OrigDst = h.rec.dialed
	d := h.st.policy.DecideOn(ctx, h.t.compiled, req)
	cancel()
	if d.Allow && d.WouldAllow {
		h.memo.add(head.Name, raw)
	}
	return d, name
}

// refuse answers a refused request with the 403 a refused first request
// gets, in its turn after the responses to the requests before it, logs
// it, and ends the connection: nothing more is read from the client.
func (h *h1conn) refuse(d policy.Decision, name string) {
	h.s.logRequest(h, &d, name)
	h.mu.Lock()
	h.answer = []byte(forbidden(denyBody(h.st.denyFull, d.TenantMessage())))
	h.mu.Unlock()
	h.push(flagRefusal)
}

// counted counts an allowed later request (not logged one by one).
func (h *h1conn) counted(d policy.Decision) {
	if h.allowed == nil {
		h.allowed = h.s.metrics.requests.WithLabelValues(h.t.name, d.Outcome())
	}
	h.allowed.Inc()
}

// hostMemo remembers, for one connection, the names its requests were
// allowed (their addresses include the connection's) and the raw Host
// value of the last one, so that the usual next request, which repeats
// it, is taken without normalising or judging it again.
type hostMemo struct {
	raw    [128]byte
	rawLen int // 0: none
	names  [4]string
	n      int
}

// first remembers the first request, if its decision allowed it.
func (m *hostMemo) first(h *h1conn) {
	if !h.rec.verdict.WouldAllow {
		return
	}
	raw, _ := h.req.HostValue(h.rbuf.bytes())
	m.add(h.rec.verdict.Name, raw)
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

func (m *hostMemo) hasName(name string) bool {
	for _, n := range m.names[:min(m.n, len(m.names))] {
		if n == name {
			return true
		}
	}
	return false
}

// add remembers an allowed name (none for a literal) and its raw Host.
func (m *hostMemo) add(name string, raw []byte) {
	m.setRaw(raw)
	if name != "" && !m.hasName(name) {
		m.names[m.n%len(m.names)] = name
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
		slog.String("mode", r.mode),
		slog.String("reason", reason),
		slog.String("detail", d.Detail),
		slog.Int("request", r.requests+1),
		slog.String("dialed", r.dialed.String()),
	}
	attrs = appendAnswer(attrs, &d.Answer)
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed_before", suppressed))
	}
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "request", attrs...)
}

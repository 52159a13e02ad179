package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/sni"
	"github.com/egressfw/egressfw/internal/status"
)

// connRecord collects what is known about one connection for its log line
// and metrics: where it came from and went, what it asked for, the verdict
// (with what DNS said), and what the relay did.
type connRecord struct {
	start  time.Time
	tenant string
	mode   string
	src    netip.AddrPort
	orig   netip.AddrPort
	// forwarded: REDIRECTed from a container, pod or VM arriving on iif.
	forwarded bool
	iif       string
	container Container // the identified container the connection came from, if any
	proto     string
	name      string
	alpn      []string
	ech       bool
	// verdict is set on every path before finish: a policy decision, or
	// the data path's own refusal or upstream failure (policy.Deny).
	verdict policy.Decision
	dialed  netip.AddrPort

	up, down            int64
	requests            int // HTTP requests forwarded (the first included)
	err                 error
	peekDur, connectDur time.Duration

	// tracker is the tenant's egressfw status; noted: this connection is
	// counted in it (see note).
	tracker *status.Tracker
	noted   bool
	// m is the tenant's resolved series (nil before a tenant is known).
	m *tenantMetrics
	// lit is the IP literal the policy judged when there was no name
	// (verdict has the name), kept for a reload to judge the open
	// connection again (see opened).
	lit netip.Addr
	// later are the names a plain-HTTP connection's later requests were
	// let through for, other than the first's (h1conn publishes them for
	// recheck); nil when there were none.
	later atomic.Pointer[[]judgedRequest]
	// closedBy is the decision of a reload's config that refused this
	// open connection and closed it (see recheck); nil otherwise.
	closedBy atomic.Pointer[policy.Decision]
}

func (r *connRecord) setRequest(res sni.Result) {
	r.proto, r.name, r.alpn, r.ech = res.Kind.String(), res.Host(), res.ALPN, res.ECH
}

// finish counts and logs the connection. Identical denials beyond the burst
// are counted but folded; the next one logged carries the folded count.
func (s *Proxy) finish(r *connRecord) {
	s.note(r)
	v := &r.verdict
	decision, reason, ans := v.Outcome(), v.Code.String(), &v.Answer
	if r.m != nil && v.Code == policy.CodeAllowed && decision == "allow" {
		r.m.allowed.Inc()
	} else {
		s.metrics.conns.WithLabelValues(r.tenant, decision, reason).Inc()
	}
	if r.forwarded {
		s.metrics.forwarded.WithLabelValues(r.tenant, r.iif, decision).Inc()
	}
	if ans.Duration > 0 {
		s.metrics.dnsDur.WithLabelValues(dnsResult(v.Code)).Observe(ans.Duration.Seconds())
	}
	var suppressed int
	if decision != "allow" {
		ok, n := s.denials.Allow(r.tenant, reason+"\x00"+r.name+"\x00"+r.orig.String())
		if !ok {
			s.metrics.suppressed.Inc()
			return
		}
		suppressed = n
	}
	attrs := []slog.Attr{
		slog.String("tenant", r.tenant),
		slog.String("src", r.src.String()),
		slog.String("orig_dst", r.orig.String()),
		slog.String("proto", r.proto),
		slog.String("name", r.name),
		slog.String("decision", decision),
		slog.String("mode", r.mode),
		slog.String("reason", reason),
		slog.String("detail", v.Detail),
	}
	if r.forwarded {
		attrs = append(attrs, slog.String("iif", r.iif))
	}
	if r.container.ID != "" {
		attrs = append(attrs, slog.String("container", r.container.Name), slog.String("container_id", r.container.ID))
	}
	if len(r.alpn) > 0 {
		attrs = append(attrs, slog.Any("alpn", r.alpn))
	}
	if r.ech {
		attrs = append(attrs, slog.Bool("ech", true))
	}
	attrs = appendAnswer(attrs, ans)
	if r.dialed.IsValid() {
		attrs = append(attrs, slog.String("dialed", r.dialed.String()))
	}
	// Durations in integer microseconds: slog's JSON handler formats a
	// float through encoding/json, ~3 % of a short connection's CPU.
	attrs = append(attrs,
		slog.Int64("bytes_up", r.up), slog.Int64("bytes_down", r.down),
		slog.Int64("peek_us", r.peekDur.Microseconds()), slog.Int64("dns_us", ans.Duration.Microseconds()),
		slog.Int64("connect_us", r.connectDur.Microseconds()), slog.Int64("total_us", time.Since(r.start).Microseconds()))
	if r.proto == "http" && r.requests > 0 {
		attrs = append(attrs, slog.Int("requests", r.requests))
	}
	if by := r.closedBy.Load(); by != nil {
		attrs = append(attrs, slog.String("closed_by", "reload"), slog.String("closed_reason", by.Code.String()),
			slog.String("closed_detail", by.Detail))
	} else if r.err != nil {
		attrs = append(attrs, slog.String("error", r.err.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed_before", suppressed))
	}
	level := slog.LevelInfo
	if decision != "allow" {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(context.Background(), level, "connection", attrs...)
}

// appendAnswer adds what a lookup found to a log line's attributes.
func appendAnswer(attrs []slog.Attr, ans *policy.Answer) []slog.Attr {
	if len(ans.Addrs) > 0 {
		attrs = append(attrs, slog.String("resolved", joinBounded(ans.Addrs, maxLoggedAddrs)), slog.String("dns_server", ans.Server))
	}
	if ans.Dropped > 0 {
		attrs = append(attrs, slog.Int("resolved_dropped", ans.Dropped))
	}
	if len(ans.Aliases) > 0 {
		attrs = append(attrs, slog.String("cname", strings.Join(ans.Aliases, ", ")))
	}
	return attrs
}

// maxLoggedAddrs bounds the resolved list in a connection's log line; the
// rest is counted ("(+24 more)").
const maxLoggedAddrs = 8

// joinBounded lists the first limit addresses, comma-separated, and counts
// the others.
func joinBounded(as []netip.Addr, limit int) string {
	var buf [160]byte // 8 IPv6 addresses of the usual length: no allocation but the string
	b := buf[:0]
	for i, a := range as[:min(len(as), limit)] {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = a.AppendTo(b)
	}
	if len(as) > limit {
		b = fmt.Appendf(b, " (+%d more)", len(as)-limit)
	}
	return string(b)
}

// dnsResult is the result label of a lookup's duration.
func dnsResult(c policy.Code) string {
	if c.IsDNS() {
		return c.String()
	}
	return "ok"
}

// opened is the request the policy judged when the connection opened
// (verdict is its decision), without the answer.
func (r *connRecord) opened() policy.Request {
	if r.verdict.Name != "" {
		return policy.Request{Name: r.verdict.Name, OrigDst: r.orig}
	}
	return policy.Request{Literal: r.lit, OrigDst: r.orig}
}

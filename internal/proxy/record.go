package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/egressfw/egressfw/internal/sni"
)

// connRecord collects what is known about one connection for its log line
// and metrics.
type connRecord struct {
	start  time.Time
	tenant string
	mode   string
	src    netip.AddrPort
	orig   netip.AddrPort
	// forwarded: REDIRECTed from a container, pod or VM arriving on iif.
	forwarded bool
	iif       string
	proto     string
	name      string
	alpn      []string
	ech       bool
	resolved  []netip.Addr
	aliases   []string
	dropped   int
	dialed    netip.AddrPort

	decision string // allow | deny | would_deny (report mode) | error
	reason   string
	detail   string

	up, down                    int64
	err                         error
	peekDur, dnsDur, connectDur time.Duration
	dnsServer                   string
}

func (r *connRecord) setRequest(res sni.Result) {
	r.proto, r.name, r.alpn, r.ech = res.Kind.String(), res.Host(), res.ALPN, res.ECH
}

func (r *connRecord) setOutcome(o outcome) {
	r.reason, r.detail, r.resolved, r.dnsDur, r.dnsServer = o.reason, o.detail, o.resolved, o.dnsDur, o.dnsServer
	r.aliases, r.dropped = o.aliases, o.dropped
	switch {
	case o.allow && o.would:
		r.decision = "allow"
	case o.allow:
		r.decision = "would_deny"
	default:
		r.decision = "deny"
	}
}

// finish counts and logs the connection. Identical denials beyond the burst
// are counted but folded; the next one logged carries the folded count.
func (s *Proxy) finish(r *connRecord) {
	if r.decision == "" {
		r.decision = "deny"
	}
	s.metrics.conns.WithLabelValues(r.tenant, r.decision, r.reason).Inc()
	if r.forwarded {
		s.metrics.forwarded.WithLabelValues(r.tenant, r.iif, r.decision).Inc()
	}
	if r.dnsDur > 0 {
		s.metrics.dnsDur.WithLabelValues(dnsResult(r.reason)).Observe(r.dnsDur.Seconds())
	}
	var suppressed int
	if r.decision != "allow" {
		ok, n := s.denials.Allow(r.tenant, r.reason+"\x00"+r.name+"\x00"+r.orig.String())
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
		slog.String("decision", r.decision),
		slog.String("mode", r.mode),
		slog.String("reason", r.reason),
		slog.String("detail", r.detail),
	}
	if r.forwarded {
		attrs = append(attrs, slog.String("iif", r.iif))
	}
	if len(r.alpn) > 0 {
		attrs = append(attrs, slog.Any("alpn", r.alpn))
	}
	if r.ech {
		attrs = append(attrs, slog.Bool("ech", true))
	}
	if len(r.resolved) > 0 {
		attrs = append(attrs, slog.String("resolved", joinBounded(r.resolved, maxLoggedAddrs)), slog.String("dns_server", r.dnsServer))
	}
	if r.dropped > 0 {
		attrs = append(attrs, slog.Int("resolved_dropped", r.dropped))
	}
	if len(r.aliases) > 0 {
		attrs = append(attrs, slog.String("cname", strings.Join(r.aliases, ", ")))
	}
	if r.dialed.IsValid() {
		attrs = append(attrs, slog.String("dialed", r.dialed.String()))
	}
	// Durations in integer microseconds: slog's JSON handler formats a
	// float through encoding/json, ~3 % of a short connection's CPU.
	attrs = append(attrs,
		slog.Int64("bytes_up", r.up), slog.Int64("bytes_down", r.down),
		slog.Int64("peek_us", r.peekDur.Microseconds()), slog.Int64("dns_us", r.dnsDur.Microseconds()),
		slog.Int64("connect_us", r.connectDur.Microseconds()), slog.Int64("total_us", time.Since(r.start).Microseconds()))
	if r.err != nil {
		attrs = append(attrs, slog.String("error", r.err.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed_before", suppressed))
	}
	level := slog.LevelInfo
	if r.decision != "allow" {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(context.Background(), level, "connection", attrs...)
}

// maxLoggedAddrs bounds the resolved list in a connection's log line; the
// rest is counted ("(+24 more)").
const maxLoggedAddrs = 8

// joinBounded is joinAddrs of the first limit addresses and a count of
// the others.
func joinBounded(as []netip.Addr, limit int) string {
	if len(as) <= limit {
		return joinAddrs(as)
	}
	return fmt.Sprintf("%s (+%d more)", joinAddrs(as[:limit]), len(as)-limit)
}

func dnsResult(reason string) string {
	switch reason {
	case reasonDNSNXDomain, reasonDNSNoAddresses, reasonDNSTimeout, reasonDNSFailure:
		return reason
	}
	return "ok"
}

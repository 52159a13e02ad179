package proxy

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/egressfw/egressfw/internal/dnsfront"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Tenants' DNS: a tenant whose DNS egressfw answers has a DNS listener per
// slot (dnsfront, opened with its TCP listener, see listen.go); the
// listener's slot is the tenant, whose answers package tenantdns decides.
// This file is the glue: the Decider, the series and the log line.

// dnsDecider decides the queries of the Proxy's DNS listeners
// (dnsfront.Decider): the listener's slot is the tenant, judged by the
// snapshot installed when the query arrived.
type dnsDecider struct{ s *Proxy }

// Decide implements dnsfront.Decider.
func (d dnsDecider) Decide(ctx context.Context, q *dnsfront.Query) dnsfront.Decision {
	st := d.s.state.Load()
	var t *tenantState
	if st != nil {
		t = st.tenants[q.Slot]
	}
	if t == nil || t.dns == nil {
		return dnsfront.Decision{Verdict: dnsfront.Refused, Reason: policy.CodeNoTenant.String(), Log: true,
			Detail: fmt.Sprintf("no tenant whose DNS egressfw answers holds slot %d (before the first config is installed, or after a reload)", q.Slot)}
	}
	a := t.dns.Answer(ctx, st.policy, st.resolver, t.compiled, q.Name, q.Type, st.denyFull)
	if a.Cached {
		d.s.metrics.dns.cacheHits.WithLabelValues(t.name).Inc()
	}
	return a.Front
}

// dnsMetrics are the series of tenants' DNS queries.
type dnsMetrics struct {
	queries   *prometheus.CounterVec // tenant, rcode, reason
	refused   *prometheus.CounterVec // tenant, decision, reason
	cacheHits *prometheus.CounterVec // tenant
	stripped  *prometheus.CounterVec // tenant, what
}

func newDNSMetrics(reg prometheus.Registerer) dnsMetrics {
	m := dnsMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_dns_queries_total",
			Help: "Tenants' DNS queries egressfw answered, by response code and reason (rcode none: left unanswered)."},
			[]string{"tenant", "rcode", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_dns_refusals_total",
			Help: "Tenants' DNS queries the policy refused (decision deny), or would refuse in report mode (would_deny)."},
			[]string{"tenant", "decision", "reason"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_dns_cache_hits_total",
			Help: "Tenants' DNS queries answered from egressfw's cache."}, []string{"tenant"}),
		stripped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_dns_stripped_total",
			Help: "What was removed from HTTPS and SVCB answers to tenants: ech and address hint parameters, QUIC-only alpn values, records."},
			[]string{"tenant", "what"}),
	}
	reg.MustRegister(m.queries, m.refused, m.cacheHits, m.stripped)
	return m
}

// observeDNS counts and logs one message a DNS listener answered (or did
// not): every query in egressfw_dns_queries_total, a refusal (or what
// report mode would refuse) also in egressfw_dns_refusals_total and in one
// log line, which the denials' limiter folds like a connection's. The line
// of a forwarded tenant's query names the container bound to its source,
// as a connection's does.
func (s *Proxy) observeDNS(ev *dnsfront.Event) {
	tenant, mode, forwarded := "-", "", false
	if ev.Query != nil {
		if st := s.state.Load(); st != nil {
			if t := st.tenants[ev.Query.Slot]; t != nil {
				tenant, mode, forwarded = t.name, t.compiled.Mode().String(), t.forwarded
			}
		}
	}
	reason := ev.Reason
	if reason == "" {
		reason = ev.Decision.Reason
	}
	// The query is counted last of its answer's series, so a reader that
	// sees it counted sees what was stripped too.
	s.countStripped(tenant, ev.Stripped)
	s.metrics.dns.queries.WithLabelValues(tenant, rcodeLabel(ev.Rcode), reason).Inc()
	d := &ev.Decision
	if !d.Log || ev.Query == nil {
		return
	}
	decision := "deny"
	if d.Verdict == dnsfront.Answer {
		decision = "would_deny"
	}
	s.metrics.dns.refused.WithLabelValues(tenant, decision, reason).Inc()
	q := ev.Query
	qtype := dns.Type(q.Type).String()
	ok, suppressed := s.denials.Allow(tenant, "dns\x00"+reason+"\x00"+q.Name+"\x00"+qtype)
	if !ok {
		s.metrics.suppressed.Inc()
		return
	}
	proto := "udp"
	if q.TCP {
		proto = "tcp"
	}
	attrs := []slog.Attr{
		slog.String("tenant", tenant),
		slog.String("src", q.Src.String()),
		slog.String("orig_dst", q.OrigDst().String()),
		slog.String("proto", proto),
		slog.String("name", q.Name),
		slog.String("type", qtype),
		slog.String("decision", decision),
		slog.String("mode", mode),
		slog.String("reason", reason),
		slog.String("detail", d.Detail),
		slog.String("rcode", rcodeLabel(ev.Rcode)),
		slog.Int64("total_us", ev.Duration.Microseconds()),
	}
	if c, ok := s.containerOf(q.Src.Addr()); ok && forwarded {
		attrs = append(attrs, slog.String("container", c.Name), slog.String("container_id", c.ID))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed_before", suppressed))
	}
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "dns", attrs...)
}

// countStripped counts what was removed from one answer.
func (s *Proxy) countStripped(tenant string, st dnsfront.Stripped) {
	if !st.Any() {
		return
	}
	for _, c := range []struct {
		what string
		n    int
	}{{"ech", st.ECH}, {"hints", st.Hints}, {"alpn", st.ALPN}, {"records", st.Records}} {
		if c.n > 0 {
			s.metrics.dns.stripped.WithLabelValues(tenant, c.what).Add(float64(c.n))
		}
	}
}

// rcodeLabel names a response code ("NXDOMAIN"); "none" when nothing was
// sent.
func rcodeLabel(rcode int) string {
	if rcode < 0 {
		return "none"
	}
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "RCODE"
}

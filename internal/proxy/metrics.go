package proxy

import (
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/egressfw/egressfw/internal/sni"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the data path's Prometheus series. Label values are low
// cardinality: tenant names come from the config, reasons are policy codes.
type metrics struct {
	conns       *prometheus.CounterVec   // tenant, decision, reason
	forwarded   *prometheus.CounterVec   // tenant, iif, decision
	active      *prometheus.GaugeVec     // tenant
	bytes       *prometheus.CounterVec   // tenant, direction
	rejected    *prometheus.CounterVec   // tenant, limit
	paced       *prometheus.CounterVec   // tenant
	dnsDur      *prometheus.HistogramVec // result
	connectDur  *prometheus.HistogramVec // result
	peekDur     *prometheus.HistogramVec // protocol
	requests    *prometheus.CounterVec   // tenant, decision: later requests of HTTP connections
	suppressed  prometheus.Counter
	closed      *prometheus.CounterVec // tenant, reason: open connections a reload's config refused
	tenantCount prometheus.Gauge
	dns         dnsMetrics

	// Children every connection touches, resolved once (a WithLabelValues
	// hashes its labels and takes the vector's lock each time).
	peekByKind [sni.KindHTTP + 1]prometheus.Observer // by sni.Kind
	connectOK  prometheus.Observer
}

// tenantMetrics are the series of one tenant that every connection of it
// touches, resolved when its snapshot is installed.
type tenantMetrics struct {
	active           prometheus.Gauge
	bytesUp, bytesDn prometheus.Counter
	allowed          prometheus.Counter // conns{decision="allow", reason="allowed"}
	requestsAllowed  prometheus.Counter // later HTTP requests allowed (not logged one by one)
}

// forTenant resolves the series of tenant name that every connection of
// it touches, and starts its series of known labels at 0, so the first
// refusal or pacing is an increase (a series that appears at 1 is not).
func (m *metrics) forTenant(name string) tenantMetrics {
	m.paced.WithLabelValues(name)
	for _, l := range rejectLimits {
		m.rejected.WithLabelValues(name, l)
	}
	return tenantMetrics{active: m.active.WithLabelValues(name),
		bytesUp: m.bytes.WithLabelValues(name, "upstream"), bytesDn: m.bytes.WithLabelValues(name, "downstream"),
		allowed:         m.conns.WithLabelValues(name, "allow", policy.CodeAllowed.String()),
		requestsAllowed: m.requests.WithLabelValues(name, "allow")}
}

// peek is the peek-duration histogram of protocol k.
func (m *metrics) peek(k sni.Kind) prometheus.Observer {
	if int(k) < len(m.peekByKind) {
		return m.peekByKind[k]
	}
	return m.peekDur.WithLabelValues(k.String())
}

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// newMetrics creates the data path's series and registers them with reg;
// the resolver cache's are read from cache.
func newMetrics(reg prometheus.Registerer, cache *resolver.CacheStats) *metrics {
	m := &metrics{}
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_connections_total",
		Help: "Tenant connections by final decision (allow, deny, would_deny: report mode let it through, error: upstream failed) and reason."}, []string{"tenant", "decision", "reason"})
	m.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_forwarded_connections_total",
		Help: "Intercepted connections of containers, pods and VMs, by tenant, ingress interface and decision."},
		[]string{"tenant", "iif", "decision"})
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "egressfw_connections_active",
		Help: "Tenant connections currently held by the listener."}, []string{"tenant"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_bytes_total",
		Help: "Bytes proxied, by direction (upstream: tenant to destination; downstream: back)."}, []string{"tenant", "direction"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_connections_rejected_total",
		Help: "Connections refused at once because a concurrency cap was reached."}, []string{"tenant", "limit"})
	m.paced = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_connections_paced_total",
		Help: "Accepts that waited for the tenant's max_new_per_second."}, []string{"tenant"})
	m.dnsDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "egressfw_dns_duration_seconds",
		Help: "Time to resolve a destination name.", Buckets: latencyBuckets}, []string{"result"})
	m.connectDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "egressfw_connect_duration_seconds",
		Help: "Time to connect upstream.", Buckets: latencyBuckets}, []string{"result"})
	m.peekDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "egressfw_peek_duration_seconds",
		Help: "Time for a client to send its ClientHello or request head.", Buckets: latencyBuckets}, []string{"protocol"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_http_requests_total",
		Help: "Requests after the first on plain-HTTP connections, each judged, by decision (allow, would_deny, deny)."},
		[]string{"tenant", "decision"})
	m.closed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_connections_closed_by_reload_total",
		Help: "Open connections closed because a reload's config refuses them, by tenant and the new config's reason."},
		[]string{"tenant", "reason"})
	m.suppressed = prometheus.NewCounter(prometheus.CounterOpts{Name: "egressfw_log_denials_suppressed_total",
		Help: "Denial log lines folded into a summary by the rate limiter."})
	m.tenantCount = prometheus.NewGauge(prometheus.GaugeOpts{Name: "egressfw_tenants",
		Help: "Tenants in the running config."})
	reg.MustRegister(m.conns, m.forwarded, m.active, m.bytes, m.rejected, m.paced, m.dnsDur, m.connectDur,
		m.peekDur, m.requests, m.closed, m.suppressed, m.tenantCount)
	for result, n := range map[string]func() uint64{"hit": cache.Hits.Load, "miss": cache.Misses.Load} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "egressfw_dns_cache_lookups_total",
			Help:        "Lookups of egressfw's resolver, by whether the cache answered (hit) or not (miss).",
			ConstLabels: prometheus.Labels{"result": result}}, func() float64 { return float64(n()) }))
	}
	m.dns = newDNSMetrics(reg)
	for k := range m.peekByKind {
		m.peekByKind[k] = m.peekDur.WithLabelValues(sni.Kind(k).String())
	}
	m.connectOK = m.connectDur.WithLabelValues("ok")
	return m
}

// rejectLimits are the values of the rejected series' limit label (see admit
// and peek).
var rejectLimits = []string{"tenant", "global", "tenant_peek", "peek"}

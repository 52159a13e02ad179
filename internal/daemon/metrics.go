package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series egressfw exports. Label values are low
// cardinality: tenant names come from the config, reasons are policy codes.
type metrics struct {
	reg         *prometheus.Registry
	conns       *prometheus.CounterVec   // tenant, decision, reason
	forwarded   *prometheus.CounterVec   // tenant, iif, decision
	active      *prometheus.GaugeVec     // tenant
	bytes       *prometheus.CounterVec   // tenant, direction
	rejected    *prometheus.CounterVec   // tenant, limit
	paced       *prometheus.CounterVec   // tenant
	dnsDur      *prometheus.HistogramVec // result
	connectDur  *prometheus.HistogramVec // result
	peekDur     *prometheus.HistogramVec // protocol
	ruleApply   *prometheus.CounterVec   // result
	reloads     *prometheus.CounterVec   // result
	cgroupSync  *prometheus.CounterVec   // event
	restored    *prometheus.CounterVec   // result
	suppressed  prometheus.Counter
	tenantCount prometheus.Gauge
}

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func newMetrics(version string) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_connections_total",
		Help: "Tenant connections by final decision (allow, deny, report) and reason."}, []string{"tenant", "decision", "reason"})
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
	m.ruleApply = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_rule_applications_total",
		Help: "nftables ruleset applications."}, []string{"result"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_reloads_total",
		Help: "Config reloads (SIGHUP)."}, []string{"result"})
	m.cgroupSync = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_cgroup_updates_total",
		Help: "Tenant cgroup ids added to or removed from the kernel maps."}, []string{"event"})
	m.restored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_ruleset_restored_total",
		Help: "Restores of the nftables table or policy routing after a change egressfw did not make (result error: the kernel refused; retried)."},
		[]string{"result"})
	m.suppressed = prometheus.NewCounter(prometheus.CounterOpts{Name: "egressfw_log_denials_suppressed_total",
		Help: "Denial log lines folded into a summary by the rate limiter."})
	m.tenantCount = prometheus.NewGauge(prometheus.GaugeOpts{Name: "egressfw_tenants",
		Help: "Tenants in the running config."})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "egressfw_build_info",
		Help: "Build information; the value is always 1."}, []string{"version", "goversion"})
	info.WithLabelValues(version, runtime.Version()).Set(1)
	for _, c := range []prometheus.Collector{m.conns, m.forwarded, m.active, m.bytes, m.rejected, m.paced, m.dnsDur, m.connectDur,
		m.peekDur, m.ruleApply, m.reloads, m.cgroupSync, m.restored, m.suppressed, m.tenantCount, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// serveMetrics serves /metrics on addr until ctx ends. The socket is opened
// before it returns, so a bad address is an error at start, not in the log.
func (m *metrics) serve(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", addr, "err", err)
		}
	}()
	return nil
}

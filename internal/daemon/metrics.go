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

// metrics are the registry egressfw exports, which the data path
// (internal/proxy) registers its series with too, and the daemon's own
// series: rules, reloads, cgroups, restores, build info.
type metrics struct {
	reg        *prometheus.Registry
	ruleApply  *prometheus.CounterVec // result
	reloads    *prometheus.CounterVec // result
	cgroupSync *prometheus.CounterVec // event
	restored   *prometheus.CounterVec // result
	// Docker-label tenants, registered only with docker.socket (followDocker)
	dockerUp      prometheus.Gauge
	containerSync *prometheus.CounterVec // result
}

func newMetrics(version string) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.ruleApply = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_rule_applications_total",
		Help: "nftables ruleset applications."}, []string{"result"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_reloads_total",
		Help: "Config reloads (SIGHUP)."}, []string{"result"})
	m.cgroupSync = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_cgroup_updates_total",
		Help: "Tenant cgroup ids added to or removed from the kernel maps."}, []string{"event"})
	m.restored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_ruleset_restored_total",
		Help: "Restores of the nftables table or policy routing after a change egressfw did not make (result error: the kernel refused; retried)."},
		[]string{"result"})
	m.dockerUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "egressfw_docker_api_up",
		Help: "1 while the Docker Engine API is followed; 0 while it cannot be read (new containers get their interface tenant only)."})
	m.containerSync = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egressfw_container_updates_total",
		Help: "Updates of the containers bound to their bridge ports, one per change the Docker Engine API reports."}, []string{"result"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "egressfw_build_info",
		Help: "Build information; the value is always 1."}, []string{"version", "goversion"})
	info.WithLabelValues(version, runtime.Version()).Set(1)
	// Every series of a known label starts at 0, so the first restore
	// or failed reload is an increase (a series that appears at 1 is not).
	for vec, values := range map[*prometheus.CounterVec][]string{m.ruleApply: {"ok", "error"}, m.reloads: {"ok", "error"},
		m.cgroupSync: {"added", "removed", "error"}, m.restored: {"ok", "error"}} {
		for _, v := range values {
			vec.WithLabelValues(v)
		}
	}
	m.reg.MustRegister(m.ruleApply, m.reloads, m.cgroupSync, m.restored, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// followDocker registers the Docker-label tenants' series.
func (m *metrics) followDocker() { m.reg.MustRegister(m.dockerUp, m.containerSync) }

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

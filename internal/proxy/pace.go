package proxy

import (
	"time"

	"github.com/egressfw/egressfw/internal/admission"
	"github.com/egressfw/egressfw/internal/config"
)

// pace waits, before the next accept on slot's listener, for the tenant's
// next token; it returns early when closing is closed.
func (s *Proxy) pace(slot uint32, closing <-chan struct{}) {
	st := s.state.Load()
	if st == nil || st.tenants[slot] == nil || st.tenants[slot].pacer == nil {
		return
	}
	t := st.tenants[slot]
	d := t.pacer.Take(time.Now())
	if d <= 0 {
		return
	}
	s.metrics.paced.WithLabelValues(t.name).Inc()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-closing:
	}
}

// configurePacers sets each tenant's max_new_per_second and returns the
// pacers by tenant name; a tenant keeps its pacer (and its tokens) across
// reloads.
func (s *Proxy) configurePacers(cfg *config.Config) map[string]*admission.Pacer {
	s.mu.Lock()
	defer s.mu.Unlock()
	pacers := make(map[string]*admission.Pacer, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		p := s.pacers[t.Name]
		if p == nil {
			p = &admission.Pacer{}
		}
		rate := t.MaxNewPerSecond
		if rate == 0 {
			rate = cfg.Limits.MaxNewPerSecond
		}
		p.SetRate(rate)
		pacers[t.Name] = p
	}
	s.pacers = pacers
	return pacers
}

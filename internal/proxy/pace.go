package proxy

import (
	"sync"
	"time"

	"github.com/egressfw/egressfw/internal/config"
)

// pacer spaces out one tenant's new connections to max_new_per_second,
// with bursts of up to one second's worth. It runs before accept(): a
// connection over the rate waits, handshake done, in the kernel's accept
// queue of the tenant's own listener, costing egressfw no descriptor and
// no goroutine, and when that queue is full the kernel drops the SYN and
// the client retransmits. Excess connections are delayed, not refused, and
// other tenants' listeners are untouched.
type pacer struct {
	mu     sync.Mutex
	rate   float64 // per second; 0: unlimited
	tokens float64
	last   time.Time
}

// setRate changes the rate (on reload); 0 turns pacing off.
func (p *pacer) setRate(perSecond int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if float64(perSecond) != p.rate {
		p.rate, p.tokens, p.last = float64(perSecond), float64(perSecond), time.Time{}
	}
}

// take spends a token at now and returns how long to wait until it is
// earned (0 if one was there). Waiters queue: each takes the next token.
func (p *pacer) take(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rate == 0 {
		return 0
	}
	if !p.last.IsZero() {
		p.tokens = min(p.rate, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	}
	p.last = now
	p.tokens--
	if p.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.tokens / p.rate * float64(time.Second))
}

// pace waits, before the next accept on slot's listener, for the tenant's
// next token; it returns early when closing is closed.
func (s *Proxy) pace(slot uint32, closing <-chan struct{}) {
	st := s.state.Load()
	if st == nil || st.tenants[slot] == nil || st.tenants[slot].pacer == nil {
		return
	}
	t := st.tenants[slot]
	d := t.pacer.take(time.Now())
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
func (s *Proxy) configurePacers(cfg *config.Config) map[string]*pacer {
	s.mu.Lock()
	defer s.mu.Unlock()
	pacers := make(map[string]*pacer, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		p := s.pacers[t.Name]
		if p == nil {
			p = &pacer{}
		}
		rate := t.MaxNewPerSecond
		if rate == 0 {
			rate = cfg.Limits.MaxNewPerSecond
		}
		p.setRate(rate)
		pacers[t.Name] = p
	}
	s.pacers = pacers
	return pacers
}

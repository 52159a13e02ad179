package admission

import (
	"sync"
	"time"
)

// Pacer spaces out one tenant's new connections to max_new_per_second,
// with bursts of up to one second's worth. It runs before accept(): a
// connection over the rate waits, handshake done, in the kernel's accept
// queue of the tenant's own listener, costing egressfw no descriptor and
// no goroutine, and when that queue is full the kernel drops the SYN and
// the client retransmits. Excess connections are delayed, not refused, and
// other tenants' listeners are untouched. The zero Pacer is unlimited.
type Pacer struct {
	mu     sync.Mutex
	rate   float64 // per second; 0: unlimited
	tokens float64
	last   time.Time
}

// SetRate changes the rate (on reload); 0 turns pacing off.
func (p *Pacer) SetRate(perSecond int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if float64(perSecond) != p.rate {
		p.rate, p.tokens, p.last = float64(perSecond), float64(perSecond), time.Time{}
	}
}

// Take spends a token at now and returns how long to wait until it is
// earned (0 if one was there). Waiters queue: each takes the next token.
func (p *Pacer) Take(now time.Time) time.Duration {
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

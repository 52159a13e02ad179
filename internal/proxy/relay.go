package proxy

import (
	"net"
	"sync"
	"time"

	"github.com/egressfw/egressfw/internal/relay"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// loops are the process's relay event loops, one per core, started with
// the first proxied connection and shared by every Proxy.
var loops struct {
	once sync.Once
	r    *relay.Relay
	err  error
}

// relayPair moves a decided connection's bytes until the pair ends, then
// calls done, on the event loops of package relay: no goroutine and no
// stack per connection, no scheduler hand-off per message (a connection's
// share of the Go scheduler was the largest user-space item of its CPU,
// bench/FINDINGS.md). If the loops cannot be started (no descriptor for
// an epoll instance), tproxy.Splice relays on a fresh goroutine instead,
// with the same semantics.
func (s *Proxy) relayPair(c, up *net.TCPConn, prefix []byte, idle time.Duration, done relay.Done) {
	loops.once.Do(func() {
		if loops.r, loops.err = relay.New(0); loops.err != nil {
			s.log.Error("relay event loops unavailable; relaying on goroutines", "err", loops.err)
		}
	})
	if loops.r != nil {
		loops.r.Add(c, up, prefix, idle, done)
		return
	}
	go func() { done(tproxy.Splice(c, up, prefix, idle)) }()
}

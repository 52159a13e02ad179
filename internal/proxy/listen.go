package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsfront"
)

// portListener is one tenant's pair of listening sockets, and its DNS
// listeners when egressfw answers its DNS.
type portListener struct {
	port    uint16
	wild    bool   // bound to the wildcard addresses (a forwarded tenant)
	dnsPort uint16 // 0: no DNS listeners
	socks   []*net.TCPListener
	dns     []*dnsfront.Listener
	done    sync.WaitGroup
	closing chan struct{} // closed with the sockets: ends a pacing wait
	once    sync.Once
}

// listenAddrs are the addresses of a tenant's listener. A local-only tenant
// listens on loopback. A forwarded tenant's connections are REDIRECTed to
// the primary address of the interface they arrived on (the bridge
// gateway, say), so its listener is bound to the wildcard address instead:
// TPROXY finds the same transparent socket for 127.0.0.1 and ::1, and the
// input chain resets any connection to a listener port that was not DNATed
// by our rules, from the host itself or from elsewhere, so the wider bind
// exposes nothing. (Loopback and wildcard sockets cannot share a port
// without SO_REUSEPORT, which would let any process of the same uid join.)
func listenAddrs(forwarded bool) []string {
	if forwarded {
		return []string{"0.0.0.0", "::"}
	}
	return []string{"127.0.0.1", "::1"}
}

// Listen opens the sockets of every slot in snap that has none yet.
// IPv6 is optional: a host without ::1 serves IPv4 only, with a warning.
// The sockets are opened by a few workers at once (a reload to 1,000
// tenants opens 2,000 of them); on any failure none of the new ones stays.
func (s *Proxy) Listen(ctx context.Context, snap *Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var todo, flipped []*tenantState
	for slot, t := range snap.tenants {
		old, ok := s.listeners[slot]
		if ok && old.port == t.slot.Port && old.wild == t.forwarded && old.dnsPort == t.dnsPort() {
			continue
		}
		if ok && (old.port == t.slot.Port || old.dnsPort != 0 && old.dnsPort == t.dnsPort()) {
			// Same port, other addresses (or DNS listeners): the old
			// sockets must go first. Connections and queries arriving
			// meanwhile find no listener and are reset or refused.
			old.close()
			delete(s.listeners, slot)
			flipped = append(flipped, old.tenant(t.name, slot))
		}
		todo = append(todo, t)
	}
	opened, err := s.openAll(ctx, todo)
	if err != nil {
		s.reopen(ctx, flipped)
		return err
	}
	for i, t := range todo {
		if old := s.listeners[t.slot.ID]; old != nil {
			old.close()
		}
		s.listeners[t.slot.ID] = opened[i]
		s.serveListener(opened[i], t.slot.ID)
	}
	return nil
}

// reopen puts back, after a failed apply, the listeners of slots whose
// sockets were closed to be re-opened on other addresses: the running
// config still sends those tenants' connections there.
func (s *Proxy) reopen(ctx context.Context, flipped []*tenantState) {
	for _, t := range flipped {
		pl, err := s.openTenant(ctx, t)
		if err != nil {
			s.log.Error("could not restore a listener after a failed reload; the tenant's connections are reset until the next good reload",
				"tenant", t.name, "port", t.slot.Port, "err", err)
			continue
		}
		s.listeners[t.slot.ID] = pl
		s.serveListener(pl, t.slot.ID)
	}
}

// listenWorkers bounds the sockets being opened at once.
const listenWorkers = 4

// openAll opens the listeners of todo, a few at a time. On failure it
// closes every socket it opened and returns the error of the first tenant
// (in todo's order) that failed.
func (s *Proxy) openAll(ctx context.Context, todo []*tenantState) ([]*portListener, error) {
	opened := make([]*portListener, len(todo))
	errs := make([]error, len(todo))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(listenWorkers, len(todo)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(todo); i = int(next.Add(1) - 1) {
				opened[i], errs[i] = s.openTenant(ctx, todo[i])
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, pl := range opened {
				if pl != nil {
					pl.closeSockets()
				}
			}
			return nil, err
		}
	}
	return opened, nil
}

// openTenant opens one tenant's sockets: the TCP listener's, and the DNS
// listeners' if egressfw answers its DNS.
func (s *Proxy) openTenant(ctx context.Context, t *tenantState) (*portListener, error) {
	pl := &portListener{port: t.slot.Port, wild: t.forwarded, dnsPort: t.dnsPort(), closing: make(chan struct{})}
	for _, ip := range listenAddrs(t.forwarded) {
		addr := netip.MustParseAddr(ip)
		ln, err := s.kernel.Listen(ctx, netip.AddrPortFrom(addr, t.slot.Port))
		if err == nil && pl.dnsPort != 0 {
			err = s.listenDNS(ctx, pl, t.slot.ID, netip.AddrPortFrom(addr, pl.dnsPort))
			if err != nil {
				ln.Close()
			}
		}
		if err != nil {
			if addr.Is6() && errors.Is(err, syscall.EADDRNOTAVAIL) {
				s.log.Warn("IPv6 loopback unavailable; serving IPv4 only", "tenant", t.name, "port", t.slot.Port)
				continue
			}
			pl.closeSockets()
			return nil, fmt.Errorf("listen for tenant %q: %w", t.name, err)
		}
		pl.socks = append(pl.socks, ln)
	}
	return pl, nil
}

// listenDNS opens a DNS listener of slot on ap and adds it to pl.
func (s *Proxy) listenDNS(ctx context.Context, pl *portListener, slot uint32, ap netip.AddrPort) error {
	srv, err := s.dnsServer()
	if err != nil {
		return err
	}
	udp, tcp, err := s.kernel.ListenDNS(ctx, ap)
	if err != nil {
		return err
	}
	l, err := srv.Serve(slot, ap, udp, tcp)
	if err != nil {
		return fmt.Errorf("serve DNS on %s: %w", ap, err)
	}
	pl.dns = append(pl.dns, l)
	return nil
}

// tenant is what reopens pl's sockets for tenant name of slot (see
// reopen): its ports and addresses; any DNS settings stand for its own,
// since a query is answered by the installed snapshot's.
func (pl *portListener) tenant(name string, slot uint32) *tenantState {
	t := &tenantState{name: name, slot: config.Slot{ID: slot, Port: pl.port, DNSPort: pl.dnsPort}, forwarded: pl.wild}
	if pl.dnsPort != 0 {
		t.dns = &tenantDNS{}
	}
	return t
}

// Prune closes the listeners of slots the installed snapshot has no tenant
// for: after Install, those of removed tenants; after a failed apply, the
// ones its Listen opened. Without an installed snapshot it does nothing.
func (s *Proxy) Prune() {
	snap := s.state.Load()
	if snap == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for slot, pl := range s.listeners {
		if _, ok := snap.tenants[slot]; !ok {
			pl.close()
			delete(s.listeners, slot)
		}
	}
}

// Health is nil while an accept loop runs on every listening socket.
func (s *Proxy) Health() error {
	if n, want := int(s.accepting.Load()), s.listenerSockets(); n < want {
		return fmt.Errorf("%d of %d accept loops running", n, want)
	}
	return nil
}

// listenerSockets counts the open listening sockets, each of which must
// have an accept loop running.
func (s *Proxy) listenerSockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pl := range s.listeners {
		n += len(pl.socks)
	}
	return n
}

// Close stops accepting; live connections go on (see Drain).
func (s *Proxy) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for slot, pl := range s.listeners {
		pl.close()
		delete(s.listeners, slot)
	}
}

// close closes the sockets and waits for their accept loops to end.
func (pl *portListener) close() {
	pl.closeSockets()
	pl.done.Wait()
}

// closeSockets closes the sockets (of a listener not yet served, or before
// waiting).
func (pl *portListener) closeSockets() {
	pl.once.Do(func() { close(pl.closing) })
	for _, l := range pl.socks {
		l.Close()
	}
	for _, l := range pl.dns {
		l.Close()
	}
}

func (s *Proxy) serveListener(pl *portListener, slot uint32) {
	for _, ln := range pl.socks {
		pl.done.Add(1)
		s.accepting.Add(1)
		go func() {
			defer pl.done.Done()
			defer s.accepting.Add(-1)
			s.acceptLoop(ln, slot, pl.closing)
		}()
	}
}

func (s *Proxy) acceptLoop(ln *net.TCPListener, slot uint32, closing <-chan struct{}) {
	port := addrPortOf(ln.Addr()).Port()
	backoff := 5 * time.Millisecond
	for {
		s.pace(slot, closing)
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning; the kernel
			// queues (or resets) new connections meanwhile.
			s.log.Error("accept failed", "addr", ln.Addr().String(), "err", err)
			time.Sleep(backoff)
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.handle(c, slot, port)
		}()
	}
}

// Drain waits up to grace for live connections to end and reports whether
// they did.
func (s *Proxy) Drain(grace time.Duration) bool {
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(grace):
		return false
	}
}

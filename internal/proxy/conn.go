package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/egressfw/egressfw/internal/sni"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// Dialer connects upstream to validated addresses only (tproxy.Dialer).
type Dialer interface {
	DialAny(ctx context.Context, addrs []netip.AddrPort) (*net.TCPConn, netip.AddrPort, error)
}

// handle serves one accepted tenant connection from start to end and logs
// it once. slot identifies the tenant: it is the listener the kernel's
// TPROXY rule delivered the connection to, never anything the tenant sent;
// port is that listener's port.
func (s *Proxy) handle(c *net.TCPConn, slot uint32, port uint16) {
	st := s.state.Load()
	rec := connRecord{start: time.Now(), src: addrPortOf(c.RemoteAddr())}
	var t *tenantState
	if st != nil { // nil: listening, but the first config is not installed yet
		t = st.tenants[slot]
	}
	if t == nil {
		rec.orig = s.kernel.OriginalDst(c)
		rec.tenant, rec.reason, rec.detail = "-", reasonTenantGone,
			fmt.Sprintf("no tenant holds slot %d (before the first config is installed, or after a reload)", slot)
		denyReset(c)
		s.finish(&rec)
		return
	}
	rec.tenant, rec.mode = t.name, t.compiled.Mode().String()
	if !s.original(c, t, port, &rec) {
		return
	}
	if !s.admit(c, t, &rec) {
		return
	}
	active := s.metrics.active.WithLabelValues(t.name)
	active.Inc()
	up, prefix, ok := s.open(c, st, t, &rec)
	if !ok {
		active.Dec()
		s.connPool.leave(t.share)
		return
	}
	// The relay may last hours. It runs on a fresh goroutine, whose stack
	// starts small, so that this one's stack, grown by parsing, resolving
	// and dialing, is freed instead of being held by an idle connection.
	s.conns.Add(1)
	go func() {
		defer s.conns.Done()
		defer s.connPool.leave(t.share)
		defer active.Dec()
		rec.up, rec.down, rec.err = tproxy.Splice(c, up, prefix, st.cfg.Listener.IdleTimeout.Duration)
		s.metrics.bytes.WithLabelValues(t.name, "upstream").Add(float64(rec.up))
		s.metrics.bytes.WithLabelValues(t.name, "downstream").Add(float64(rec.down))
		s.finish(&rec)
	}()
}

// open peeks at the connection, decides and connects upstream. On failure
// it has answered the client and logged.
func (s *Proxy) open(c *net.TCPConn, st *Snapshot, t *tenantState, rec *connRecord) (*net.TCPConn, []byte, bool) {
	res, prefix, ok := s.peek(c, st, t, rec)
	if !ok {
		return nil, nil, false
	}
	// The context bounds resolving and connecting only: it is cancelled
	// (its timer stopped) before the relay starts.
	ctx, cancel := context.WithTimeout(context.Background(), st.cfg.DNS.Timeout.Duration+st.cfg.Listener.ConnectTimeout.Duration)
	defer cancel()
	o := decider{policy: st.policy, tenant: t.compiled, resolver: st.resolver}.decide(ctx, res, rec.orig)
	rec.setOutcome(o)
	if !o.allow {
		s.deny(c, st.denyFull, res, rec, o.tenantMsg)
		return nil, nil, false
	}
	up, ok := s.connect(ctx, c, res, rec, o.dial, st.cfg.Listener.MaxConnectAttempts)
	return up, prefix, ok
}

// reasonNoOriginalDst: a redirected connection conntrack has no NAT record of.
const reasonNoOriginalDst = "no_original_destination"

// original finds the connection's original destination: the local address
// of a TPROXYed connection, or, for a forwarded tenant's REDIRECTed one,
// conntrack's pre-NAT destination, with the ingress interface. A redirected
// connection without a NAT record is refused (fail closed).
func (s *Proxy) original(c *net.TCPConn, t *tenantState, port uint16, rec *connRecord) bool {
	if !isRedirected(c, t.forwarded, port) {
		rec.orig = s.kernel.OriginalDst(c)
		return true
	}
	local := addrPortOf(c.LocalAddr())
	rec.forwarded = true
	rec.iif = s.ifaceOfAddr(local.Addr())
	if rec.iif == "" {
		rec.iif = "?" // an address that appeared since the last update
	}
	orig, err := s.kernel.OriginalDstNAT(c)
	if err != nil {
		rec.orig, rec.decision, rec.reason, rec.detail = local, "deny", reasonNoOriginalDst, err.Error()
		denyReset(c)
		s.finish(rec)
		return false
	}
	rec.orig = orig
	return true
}

// isRedirected: a TPROXYed connection keeps its original destination port
// (an intercept port, never a listener port); a REDIRECTed one, of a
// forwarded tenant, arrives on the port of the listener that accepted it.
func isRedirected(c *net.TCPConn, forwarded bool, listenerPort uint16) bool {
	return forwarded && addrPortOf(c.LocalAddr()).Port() == listenerPort
}

// admit applies the global and per-tenant caps (see pool); over a cap the
// connection is reset at once and counted.
func (s *Proxy) admit(c *net.TCPConn, t *tenantState, rec *connRecord) bool {
	switch s.connPool.enter(t.share) {
	case "":
		return true
	case overTenant:
		s.overLimit(c, rec, "tenant", "tenant connection limit reached")
	default:
		s.overLimit(c, rec, "global", "global connection limit reached (the free slots are other tenants' reserve)")
	}
	return false
}

// overLimit refuses a connection at once because the named cap is full:
// counted, reset, logged.
func (s *Proxy) overLimit(c *net.TCPConn, rec *connRecord, limit, detail string) {
	s.metrics.rejected.WithLabelValues(rec.tenant, limit).Inc()
	rec.reason, rec.detail, rec.decision = "over_limit", detail, "deny"
	denyReset(c)
	s.finish(rec)
}

// peek reads the first bytes under the peek cap and deadline. On failure it
// answers in the client's protocol and logs.
func (s *Proxy) peek(c *net.TCPConn, st *Snapshot, t *tenantState, rec *connRecord) (sni.Result, []byte, bool) {
	// One tenant holding silent connections uses up its own share, never
	// the other tenants' reserve (see pool).
	switch s.peekPool.enter(t.peekShare) {
	case overTenant:
		s.overLimit(c, rec, "tenant_peek", "too many of this tenant's connections still sending their first bytes")
		return sni.Result{}, nil, false
	case overPool:
		s.overLimit(c, rec, "peek", "too many connections still sending their first bytes (the free slots are other tenants' reserve)")
		return sni.Result{}, nil, false
	}
	t0 := time.Now()
	res, prefix, err := sni.Peek(c, st.peekOpts)
	s.peekPool.leave(t.peekShare)
	rec.peekDur = time.Since(t0)
	rec.setRequest(res)
	s.metrics.peekDur.WithLabelValues(res.Kind.String()).Observe(rec.peekDur.Seconds())
	if err == nil {
		return res, prefix, true
	}
	rec.decision, rec.detail = "deny", err.Error()
	switch {
	case errors.Is(err, sni.ErrTimeout):
		rec.reason = reasonPeekTimeout
	case errors.Is(err, sni.ErrTruncated):
		rec.reason = reasonClientClosedEarly
	case errors.Is(err, sni.ErrUnknownProtocol):
		rec.reason = reasonUnknownProto
	case errors.Is(err, sni.ErrTooLarge):
		rec.reason = peekCapReason(err, res.Kind)
	default:
		rec.reason = reasonMalformed
	}
	switch res.Kind {
	case sni.KindTLS:
		denyTLS(c, alertAccessDenied)
	case sni.KindHTTP:
		denyHTTP(c, denyBody(st.denyFull, "the request could not be read: "+rec.reason))
	default:
		denyReset(c)
	}
	s.finish(rec)
	return res, nil, false
}

// Reasons for first bytes over a cap of the peek (listener.max_client_hello,
// sni.DefaultMaxHelloRecords, listener.max_http_header).
const (
	reasonHelloTooLarge  = "hello_too_large"
	reasonTooManyRecords = "too_many_records"
	reasonHeadTooLarge   = "head_too_large"
)

// peekCapReason names the cap an sni.ErrTooLarge error exceeded.
func peekCapReason(err error, kind sni.Kind) string {
	switch {
	case errors.Is(err, sni.ErrTooManyRecords):
		return reasonTooManyRecords
	case kind == sni.KindHTTP:
		return reasonHeadTooLarge
	}
	return reasonHelloTooLarge
}

// deny answers a refused request in its own protocol; full: with the
// reason (listener.deny_detail), else the same answer for every refusal.
func (s *Proxy) deny(c *net.TCPConn, full bool, res sni.Result, rec *connRecord, msg string) {
	switch res.Kind {
	case sni.KindTLS:
		denyTLS(c, denyAlert(full, res.Name == "" && !res.Addr.IsValid()))
	case sni.KindHTTP:
		denyHTTP(c, denyBody(full, msg))
	default:
		denyReset(c)
	}
	s.finish(rec)
}

// connect dials at most attempts of the validated addresses, the original
// destination first, then its family. On failure the client gets a 502
// (HTTP) or a reset (TLS).
func (s *Proxy) connect(ctx context.Context, c *net.TCPConn, res sni.Result, rec *connRecord, addrs []netip.AddrPort, attempts int) (*net.TCPConn, bool) {
	t0 := time.Now()
	addrs = tproxy.SortAddrs(addrs, rec.orig)
	up, dialed, err := s.dialer.DialAny(ctx, addrs[:min(len(addrs), max(attempts, 1))])
	rec.connectDur = time.Since(t0)
	if err == nil {
		s.metrics.connectDur.WithLabelValues("ok").Observe(rec.connectDur.Seconds())
		rec.dialed = dialed
		return up, true
	}
	switch {
	case errors.Is(err, tproxy.ErrRefused):
		rec.reason = reasonUpstreamRefused
	case errors.Is(err, tproxy.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		rec.reason = reasonUpstreamTimeout
	case errors.Is(err, tproxy.ErrUnreachable):
		rec.reason = reasonUpstreamUnreach
	default:
		rec.reason = reasonUpstreamError
	}
	s.metrics.connectDur.WithLabelValues(rec.reason).Observe(rec.connectDur.Seconds())
	rec.decision, rec.detail = "error", fmt.Sprintf("connect upstream: %v", err)
	if res.Kind == sni.KindHTTP {
		writeBadGateway(c, fmt.Sprintf("could not connect to %q: %s", res.Host(), rec.reason))
	} else {
		denyReset(c)
	}
	s.finish(rec)
	return nil, false
}

func writeBadGateway(c net.Conn, reason string) {
	body := "egressfw: " + oneLine(reason) + "\n"
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	closeGracefully(c)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

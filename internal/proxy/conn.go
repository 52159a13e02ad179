package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/egressfw/egressfw/internal/admission"
	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/refuse"
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
		rec.tenant = "-"
		rec.verdict = policy.Deny(nil, rec.orig, policy.CodeNoTenant,
			fmt.Sprintf("no tenant holds slot %d (before the first config is installed, or after a reload)", slot))
		refuse.Reset(c)
		s.finish(&rec)
		return
	}
	rec.tenant, rec.mode, rec.tracker, rec.m = t.name, t.compiled.Mode().String(), t.tracker, &t.m
	if !s.original(c, t, port, &rec) {
		return
	}
	if !s.admit(c, t, &rec) {
		return
	}
	active := t.m.active
	active.Inc()
	up, prefix, h1, ok := s.open(c, st, t, &rec)
	if !ok {
		active.Dec()
		s.connPool.Leave(t.share)
		return
	}
	s.note(&rec) // decided now; finish is when the relay ends
	// The relay may last hours. It runs on a fresh goroutine, whose stack
	// starts small, so that this one's stack, grown by parsing, resolving
	// and dialing, is freed instead of being held by an idle connection
	// (on this goroutine, 15.2 KiB of RSS per idle connection instead of
	// 9.7; the goroutine less saved ~5 % of a connection's CPU).
	s.conns.Add(1)
	s.addLive(&rec, c, up, slot, st)
	go func() {
		defer s.conns.Done()
		defer s.connPool.Leave(t.share)
		defer active.Dec()
		defer s.removeLive(&rec)
		if h1 != nil {
			rec.up, rec.down, rec.err = h1.run(up)
		} else {
			rec.up, rec.down, rec.err = tproxy.Splice(c, up, prefix, st.cfg.Listener.IdleTimeout.Duration)
		}
		t.m.bytesUp.Add(float64(rec.up))
		t.m.bytesDn.Add(float64(rec.down))
		s.finish(&rec)
	}()
}

// open peeks at the connection, decides and connects upstream. On failure
// it has answered the client and logged. A plain-HTTP connection comes
// with its relay (h1), which judges every later request too; its first
// request's framing is checked before it is judged.
func (s *Proxy) open(c *net.TCPConn, st *Snapshot, t *tenantState, rec *connRecord) (up *net.TCPConn, prefix []byte, h1 *h1conn, ok bool) {
	res, prefix, ok := s.peek(c, st, t, rec)
	if !ok {
		return nil, nil, nil, false
	}
	var upgrade httphead.Upgrade
	if res.Kind == sni.KindHTTP {
		var f httphead.Framing
		var err error
		if h1, f, err = newH1(s, st, t, rec, c, prefix); err != nil {
			rec.verdict = policy.Deny(t.compiled, rec.orig, policy.CodeMalformed, err.Error())
			s.deny(c, st.denyFull, res, rec)
			return nil, nil, nil, false
		}
		upgrade = f.Upgrade
	}
	// No deadline of the connection's own: the lookup is bounded by the
	// resolver (dns.timeout, per shared query) and each connect attempt by
	// the dialer (listener.connect_timeout); one more timer per connection
	// would bound nothing they do not.
	ctx := context.Background()
	rec.lit = requestOf(res, rec.orig).Literal
	if upgrade == httphead.UpgradeH2C {
		rec.verdict = refuseH2C(t.compiled, rec.orig)
	} else {
		rec.verdict = judge(ctx, st.policy, t.compiled, res, rec.orig)
	}
	if !rec.verdict.Allow {
		s.deny(c, st.denyFull, res, rec)
		return nil, nil, nil, false
	}
	up, ok = s.connect(ctx, c, t, res, rec, rec.verdict.Targets(), st.cfg.Listener.MaxConnectAttempts)
	return up, prefix, h1, ok
}

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
	rec.container, _ = s.containerOf(rec.src.Addr())
	rec.iif = s.ifaceOfAddr(local.Addr())
	if rec.iif == "" {
		rec.iif = "?" // an address that appeared since the last update
	}
	orig, err := s.kernel.OriginalDstNAT(c)
	if err != nil {
		rec.orig = local
		rec.verdict = policy.Deny(t.compiled, local, policy.CodeNoOriginalDst, err.Error())
		refuse.Reset(c)
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

// admit applies the global and per-tenant caps (see admission.Pool); over a cap the
// connection is reset at once and counted.
func (s *Proxy) admit(c *net.TCPConn, t *tenantState, rec *connRecord) bool {
	switch s.connPool.Enter(t.share) {
	case "":
		return true
	case admission.OverTenant:
		s.overLimit(c, t, rec, "tenant", "tenant connection limit reached")
	default:
		s.overLimit(c, t, rec, "global", "global connection limit reached (the free slots are other tenants' reserve)")
	}
	return false
}

// overLimit refuses a connection at once because the named cap is full:
// counted, reset, logged.
func (s *Proxy) overLimit(c *net.TCPConn, t *tenantState, rec *connRecord, limit, detail string) {
	s.metrics.rejected.WithLabelValues(rec.tenant, limit).Inc()
	rec.verdict = policy.Deny(t.compiled, rec.orig, policy.CodeOverLimit, detail)
	refuse.Reset(c)
	s.finish(rec)
}

// peek reads the first bytes under the peek cap and deadline. On failure it
// answers in the client's protocol and logs.
func (s *Proxy) peek(c *net.TCPConn, st *Snapshot, t *tenantState, rec *connRecord) (sni.Result, []byte, bool) {
	// One tenant holding silent connections uses up its own share, never
	// the other tenants' reserve (see admission.Pool).
	switch s.peekPool.Enter(t.peekShare) {
	case admission.OverTenant:
		s.overLimit(c, t, rec, "tenant_peek", "too many of this tenant's connections still sending their first bytes")
		return sni.Result{}, nil, false
	case admission.OverPool:
		s.overLimit(c, t, rec, "peek", "too many connections still sending their first bytes (the free slots are other tenants' reserve)")
		return sni.Result{}, nil, false
	}
	t0 := time.Now()
	res, prefix, err := sni.Peek(c, st.peekOpts)
	s.peekPool.Leave(t.peekShare)
	rec.peekDur = time.Since(t0)
	rec.setRequest(res)
	s.metrics.peek(res.Kind).Observe(rec.peekDur.Seconds())
	if err == nil {
		return res, prefix, true
	}
	rec.verdict = policy.Deny(t.compiled, rec.orig, peekCode(err, res.Kind), err.Error())
	switch res.Kind {
	case sni.KindTLS:
		refuse.TLS(c, refuse.AlertAccessDenied)
	case sni.KindHTTP:
		refuse.HTTP(c, refuse.Body(st.denyFull, rec.verdict.TenantMessage()))
	default:
		refuse.Reset(c)
	}
	s.finish(rec)
	return res, nil, false
}

// peekCode names why the first bytes could not be read; for first bytes
// over a cap of the peek, the cap (listener.max_client_hello,
// sni.DefaultMaxHelloRecords, listener.max_http_header).
func peekCode(err error, kind sni.Kind) policy.Code {
	switch {
	case errors.Is(err, sni.ErrTimeout):
		return policy.CodePeekTimeout
	case errors.Is(err, sni.ErrTruncated):
		return policy.CodeClientClosed
	case errors.Is(err, sni.ErrUnknownProtocol):
		return policy.CodeUnknownProtocol
	case errors.Is(err, sni.ErrTooManyRecords):
		return policy.CodeTooManyRecords
	case errors.Is(err, sni.ErrTooLarge) && kind == sni.KindHTTP:
		return policy.CodeHeadTooLarge
	case errors.Is(err, sni.ErrTooLarge):
		return policy.CodeHelloTooLarge
	}
	return policy.CodeMalformed
}

// deny answers a refused request in its own protocol; full: with the
// reason (listener.deny_detail), else the same answer for every refusal.
func (s *Proxy) deny(c *net.TCPConn, full bool, res sni.Result, rec *connRecord) {
	switch res.Kind {
	case sni.KindTLS:
		refuse.TLS(c, refuse.Alert(full, res.Name == "" && !res.Addr.IsValid()))
	case sni.KindHTTP:
		refuse.HTTP(c, refuse.Body(full, rec.verdict.TenantMessage()))
	default:
		refuse.Reset(c)
	}
	s.finish(rec)
}

// connect dials at most attempts of the validated addresses, the original
// destination first, then its family. On failure the client gets a 502
// (HTTP) or a reset (TLS).
func (s *Proxy) connect(ctx context.Context, c *net.TCPConn, t *tenantState, res sni.Result, rec *connRecord, addrs []netip.AddrPort, attempts int) (*net.TCPConn, bool) {
	t0 := time.Now()
	addrs = tproxy.SortAddrs(addrs, rec.orig)
	up, dialed, err := s.dialer.DialAny(ctx, addrs[:min(len(addrs), max(attempts, 1))])
	rec.connectDur = time.Since(t0)
	if err == nil {
		s.metrics.connectOK.Observe(rec.connectDur.Seconds())
		rec.dialed = dialed
		return up, true
	}
	code := policy.CodeUpstreamError
	switch {
	case errors.Is(err, tproxy.ErrRefused):
		code = policy.CodeUpstreamRefused
	case errors.Is(err, tproxy.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		code = policy.CodeUpstreamTimeout
	case errors.Is(err, tproxy.ErrUnreachable):
		code = policy.CodeUpstreamUnreachable
	}
	s.metrics.connectDur.WithLabelValues(code.String()).Observe(rec.connectDur.Seconds())
	// The verdict becomes the failure; what was judged stays for the log.
	failed := policy.Deny(t.compiled, rec.orig, code, fmt.Sprintf("connect upstream: %v", err))
	failed.Name, failed.Answer = rec.verdict.Name, rec.verdict.Answer
	rec.verdict = failed
	if res.Kind == sni.KindHTTP {
		refuse.BadGateway(c, fmt.Sprintf("could not connect to %q: %s", res.Host(), code))
	} else {
		refuse.Reset(c)
	}
	s.finish(rec)
	return nil, false
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

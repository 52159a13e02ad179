package sni

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
)

// DefaultPeekTimeout bounds how long Peek waits for a complete request.
const DefaultPeekTimeout = 5 * time.Second

// peekInitialBuf fits a post-quantum ClientHello or a typical request head
// in one read.
const peekInitialBuf = 4 << 10

// peekFreeReads is how many reads Peek makes before it asks the kernel not
// to wake it until the parser can progress (see lowWater). Real clients
// send their ClientHello in one or two TCP segments.
const peekFreeReads = 4

// Pacing. A TLS record says how long it is, so lowWater can keep the
// kernel from waking Peek until it is complete; an HTTP request head (or a
// record header trickling in) gives nothing to wait for, and a client that
// writes it a byte at a time would cost a wake-up and a read per byte.
// After peekPacedReads reads, Peek therefore reads a connection at most once
// per peekReadGap while the parser has no length to wait for, taking
// whatever arrived meanwhile in one read, with the low-water mark raised so
// that arriving segments wake no one (not even the runtime's poller): at most
// peek_timeout / peekReadGap more reads, whatever the client does, for at
// most peekReadGap of added latency per read of a client that has already
// split its first bytes over peekPacedReads segments (real clients send them
// in one or two).
const (
	peekPacedReads = 8
	peekReadGap    = 20 * time.Millisecond
)

// PeekOptions configures Peek; zero fields take the package defaults.
type PeekOptions struct {
	// Timeout is the deadline for the whole peek, not per read.
	Timeout time.Duration
	// MaxHandshake bounds the ClientHello handshake message.
	MaxHandshake int
	// MaxHelloRecords bounds the TLS records the ClientHello may span.
	MaxHelloRecords int
	// MaxHTTPHead bounds the HTTP request head.
	MaxHTTPHead int
}

func (o PeekOptions) withDefaults() PeekOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultPeekTimeout
	}
	if o.MaxHandshake <= 0 {
		o.MaxHandshake = DefaultMaxHandshake
	}
	if o.MaxHelloRecords <= 0 {
		o.MaxHelloRecords = DefaultMaxHelloRecords
	}
	if o.MaxHTTPHead <= 0 {
		o.MaxHTTPHead = httphead.DefaultMaxHead
	}
	return o
}

// maxWire is the most bytes the parser for kind can need before deciding:
// the largest ClientHello in the most records it may span, plus the header
// of the record that is one too many.
func (o PeekOptions) maxWire(kind Kind) int {
	tls := (o.MaxHelloRecords+1)*recordHeaderLen + handshakeHeaderLen + o.MaxHandshake
	switch kind {
	case KindTLS:
		return tls
	case KindHTTP:
		return o.MaxHTTPHead
	}
	return max(tls, o.MaxHTTPHead)
}

// Peek reads from conn until the first bytes identify the destination or
// prove they cannot, and returns the result together with every byte it
// read, which the caller must replay upstream unchanged. It sets a read
// deadline of opts.Timeout for the whole peek and clears it before
// returning.
//
// Each read is parsed from where the previous one stopped, so the whole
// peek examines each byte a bounded number of times, however the client
// splits its bytes into TCP segments and TLS records; while a TLS record
// trickles in, the kernel wakes Peek only once it is complete (lowWater),
// and a connection that keeps sending a few bytes at a time is read at most
// once per peekReadGap (see Pacing).
//
// The error is nil exactly when the parse is Done. Otherwise it wraps one
// of ErrTimeout, ErrTruncated, ErrUnknownProtocol, ErrTooLarge (also
// ErrTooManyRecords), ErrMalformed (ErrIPLiteralSNI is both ErrMalformed
// and itself), or the connection's read error; Result.Kind says which
// protocol it was, so the caller can answer with a TLS alert, an HTTP 403
// or a reset.
func Peek(conn net.Conn, opts PeekOptions) (Result, []byte, error) {
	opts = opts.withDefaults()
	deadline := time.Now().Add(opts.Timeout)
	if err := conn.SetReadDeadline(deadline); err != nil {
		return Result{}, nil, fmt.Errorf("sni: setting peek deadline: %w", err)
	}
	lw := newLowWater(conn)
	res, buf, err := peekLoop(conn, opts, &lw, deadline)
	if derr := conn.SetReadDeadline(time.Time{}); derr != nil && err == nil {
		err = fmt.Errorf("sni: clearing peek deadline: %w", derr)
	}
	if lerr := lw.set(1); lerr != nil && err == nil {
		err = lerr
	}
	return res, buf, err
}

func peekLoop(conn net.Conn, opts PeekOptions, lw *lowWater, deadline time.Time) (Result, []byte, error) {
	buf := make([]byte, 0, peekInitialBuf)
	res := Result{}
	p := newParser(opts)
	limit := opts.maxWire(KindUnknown)
	var last time.Time // when the previous read returned
	for reads := 1; ; reads++ {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return res, buf, fmt.Errorf("%w: %s: %d bytes without a decision", ErrTooLarge, res.Kind, len(buf))
			}
			grown := make([]byte, len(buf), min(2*cap(buf), limit))
			copy(grown, buf)
			buf = grown
		}
		var n int
		var rerr error
		if reads > peekPacedReads && p.wants() <= 1 && lw.sc != nil { // nothing for lowWater to wait for
			n, rerr = lw.pacedRead(buf[len(buf):cap(buf)], last, deadline, limit)
		} else {
			if reads > peekFreeReads {
				if err := lw.set(p.wants()); err != nil {
					return res, buf, err
				}
			}
			n, rerr = conn.Read(buf[len(buf):cap(buf)])
		}
		last = time.Now()
		buf = buf[:len(buf)+n]
		if n > 0 {
			var st Status
			var err error
			res, st, err = p.parse(buf)
			switch st {
			case Done:
				return res, buf, nil
			case Malformed:
				return res, buf, err
			}
			limit = opts.maxWire(res.Kind)
		}
		if rerr != nil {
			return res, buf, peekReadError(rerr, res.Kind, len(buf))
		}
	}
}

// pacedRead waits until peekReadGap after last (or until deadline, if that
// is sooner, and then fails with os.ErrDeadlineExceeded), then takes what
// the connection has queued without waiting for more: 0 bytes and no error
// if nothing is. Meanwhile the low-water mark stays at hold bytes (more
// than the peek can need), so arriving segments wake no one, not even the
// runtime's poller; a non-blocking read still takes what is queued.
func (w *lowWater) pacedRead(b []byte, last, deadline time.Time, hold int) (int, error) {
	if err := w.set(max(hold, 2)); err != nil {
		return 0, err
	}
	wake := last.Add(peekReadGap)
	if deadline.Before(wake) {
		wake = deadline
	}
	if d := time.Until(wake); d > 0 {
		time.Sleep(d)
	}
	if !time.Now().Before(deadline) {
		return 0, os.ErrDeadlineExceeded
	}
	rc, err := w.raw()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), b)
		switch {
		case rerr == syscall.EAGAIN:
			n, rerr = 0, nil
		case rerr == nil && n == 0:
			rerr = io.EOF
		}
		n = max(n, 0)
		return true // never wait for readability: that would take hold bytes
	}); err != nil {
		return 0, err
	}
	if rerr != nil && rerr != io.EOF {
		rerr = fmt.Errorf("read: %w", rerr)
	}
	return n, rerr
}

func peekReadError(err error, kind Kind, n int) error {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %s after %d bytes: %w", ErrTimeout, kind, n, err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %s after %d bytes", ErrTruncated, kind, n)
	}
	return fmt.Errorf("sni: reading the first bytes: %w", err)
}

// lowWater sets the connection's SO_RCVLOWAT: the kernel then wakes Peek
// only once that many bytes are queued (or the peer closes), so a client
// that writes a TLS record one byte per TCP segment costs a few reads
// instead of one per byte. Peek sets it only to bytes the parser needs
// before it can decide anything, and back to 1 before it returns, since
// the relay that follows must see every byte at once.
type lowWater struct {
	sc  syscall.Conn    // nil: not a socket; lowWater does nothing
	rc  syscall.RawConn // taken from sc on first need: most peeks never set a mark
	cur int
}

func newLowWater(conn net.Conn) lowWater {
	w := lowWater{cur: 1}
	w.sc, _ = conn.(syscall.Conn)
	return w
}

// raw returns the socket's RawConn, taking it on first use.
func (w *lowWater) raw() (syscall.RawConn, error) {
	if w.rc == nil {
		rc, err := w.sc.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("sni: raw connection: %w", err)
		}
		w.rc = rc
	}
	return w.rc, nil
}

// set makes n the low-water mark if it is not already.
func (w *lowWater) set(n int) error {
	if w.sc == nil || n == w.cur {
		return nil
	}
	rc, err := w.raw()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	}); err != nil || serr != nil {
		return fmt.Errorf("sni: setting SO_RCVLOWAT to %d: %w", n, errors.Join(err, serr))
	}
	w.cur = n
	return nil
}

// Command loadgen is the benchmark's tenant: it generates the load whose
// figures go into BENCHMARKS.md and prints them as one JSON object.
//
//	conn  every request on a new TCP (+TLS) connection, closed-loop with -c
//	      workers; latency is connect → handshake → request → last byte
//	bulk  -c keep-alive connections downloading -path in a loop; bytes/s
//	idle  open -n connections (TLS handshake + one keep-alive request),
//	      print {"open":N,...}, hold them idle until stdin closes
//
// It dials the -addr IP itself and names -host in the SNI and Host header, so
// the proxies under test see exactly what a tenant resolving -host would send.
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	mode, addr, host, path string
	tls                    bool
	conc, n, maxErr        int
	dur, warmup, timeout   time.Duration
}

// result is what loadgen prints.
type result struct {
	Mode     string  `json:"mode"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate,omitempty"`
	P50ms    float64 `json:"p50_ms,omitempty"`
	P99ms    float64 `json:"p99_ms,omitempty"`
	Bytes    int64   `json:"bytes,omitempty"`
	MBps     float64 `json:"mbytes_per_s,omitempty"`
	Open     int     `json:"open,omitempty"`
	// Total is every connection made, warm-up and tail included: what a
	// proxy's CPU over the whole run is divided by.
	Total int64 `json:"total,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "conn", "conn | bulk | idle")
	flag.StringVar(&o.addr, "addr", "203.0.113.10:443", "IP:port to connect to")
	flag.StringVar(&o.host, "host", "origin.example.com", "name for SNI and Host")
	flag.StringVar(&o.path, "path", "/", "request path")
	flag.BoolVar(&o.tls, "tls", true, "speak TLS")
	flag.IntVar(&o.conc, "c", 32, "concurrent workers (conn) or streams (bulk)")
	flag.IntVar(&o.n, "n", 8000, "connections to hold (idle)")
	flag.IntVar(&o.maxErr, "maxerr", 256, "idle: stop opening after this many failures")
	flag.DurationVar(&o.dur, "d", 10*time.Second, "measured duration")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured run-in before -d")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-connection deadline")
	flag.Parse()

	var r result
	switch o.mode {
	case "conn":
		r = runConn(o)
	case "bulk":
		r = runBulk(o)
	case "idle":
		r = runIdle(o)
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown mode %q\n", o.mode)
		os.Exit(2)
	}
	if o.mode != "idle" { // idle printed its result before holding
		r.Mode = o.mode
		_ = json.NewEncoder(os.Stdout).Encode(r)
	}
}

func (o options) tlsConfig() *tls.Config {
	// X25519 only, like OpenSSL 3.0 clients: Go's default hybrid
	// post-quantum share would add client CPU that no peer here uses.
	return &tls.Config{ServerName: o.host, InsecureSkipVerify: true, //nolint:gosec // test CA, not verified (as wrk)
		CurvePreferences: []tls.CurveID{tls.X25519}}
}

// dial opens one connection, with TLS if asked, all under deadline.
func (o options) dial(deadline time.Time) (net.Conn, error) {
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	_ = c.SetDeadline(deadline)
	if !o.tls {
		return c, nil
	}
	tc := tls.Client(c, o.tlsConfig())
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// oneRequest is one new connection, one request, read to EOF.
func (o options) oneRequest(req []byte) error {
	c, err := o.dial(time.Now().Add(o.timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

type errCount struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *errCount) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

func runConn(o options) result {
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: egressfw-bench\r\nConnection: close\r\n\r\n", o.path, o.host)
	start := time.Now()
	from, end := start.Add(o.warmup), start.Add(o.warmup+o.dur)
	lats := make([][]time.Duration, o.conc)
	var errs errCount
	var total atomic.Int64
	var wg sync.WaitGroup
	for w := range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				err := o.oneRequest(req)
				total.Add(1)
				t1 := time.Now()
				if t1.Before(from) || t1.After(end) {
					continue
				}
				if err != nil {
					errs.add(err)
					continue
				}
				lats[w] = append(lats[w], t1.Sub(t0))
			}
		}()
	}
	wg.Wait()
	all := slices.Concat(lats...)
	slices.Sort(all)
	r := result{OK: int64(len(all)), Errors: errs.n.Load(), FirstErr: errs.first, Seconds: o.dur.Seconds(), Total: total.Load()}
	r.Rate = float64(r.OK) / o.dur.Seconds()
	if len(all) > 0 {
		r.P50ms = ms(all[len(all)/2])
		r.P99ms = ms(all[min(len(all)-1, len(all)*99/100)])
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runBulk(o options) result {
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: egressfw-bench\r\n\r\n", o.path, o.host)
	var total atomic.Int64
	var errs errCount
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := o.download(req, &total, stop); err != nil {
				errs.add(err)
			}
		}()
	}
	time.Sleep(o.warmup)
	b0, t0 := total.Load(), time.Now()
	time.Sleep(o.dur)
	b1, secs := total.Load(), time.Since(t0).Seconds()
	close(stop)
	wg.Wait()
	r := result{OK: int64(o.conc), Errors: errs.n.Load(), FirstErr: errs.first, Seconds: secs, Bytes: b1 - b0}
	r.MBps = float64(r.Bytes) / secs / 1e6
	return r
}

// download repeats req on one keep-alive connection until stop, counting
// body bytes as they arrive.
func (o options) download(req []byte, total *atomic.Int64, stop <-chan struct{}) error {
	c, err := o.dial(time.Now().Add(o.timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Time{})
	go func() { <-stop; c.Close() }()
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, 256<<10)
	for {
		if _, err := c.Write(req); err != nil {
			return stopped(stop, fmt.Errorf("write request: %w", err))
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return stopped(stop, fmt.Errorf("read response: %w", err))
		}
		for {
			n, err := resp.Body.Read(buf)
			total.Add(int64(n))
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return stopped(stop, fmt.Errorf("read body: %w", err))
			}
		}
	}
}

// stopped hides the error a deliberate close causes.
func stopped(stop <-chan struct{}, err error) error {
	select {
	case <-stop:
		return nil
	default:
		return err
	}
}

func runIdle(o options) result {
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: egressfw-bench\r\n\r\n", o.path, o.host)
	conns := make(chan net.Conn, o.n)
	var errs errCount
	var wg sync.WaitGroup
	work := make(chan struct{}, o.n)
	for range o.n {
		work <- struct{}{}
	}
	close(work)
	t0 := time.Now()
	for range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if errs.n.Load() >= int64(o.maxErr) {
					continue // the proxy is refusing; do not wait out every timeout
				}
				c, err := o.openIdle(req)
				if err != nil {
					errs.add(err)
					continue
				}
				conns <- c
			}
		}()
	}
	wg.Wait()
	r := result{Open: len(conns), Errors: errs.n.Load(), FirstErr: errs.first, Seconds: time.Since(t0).Seconds()}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the harness has measured
	close(conns)
	for c := range conns {
		c.Close()
	}
	return r
}

// openIdle establishes one proxied connection and proves it carries data
// both ways, then leaves it idle.
func (o options) openIdle(req []byte) (net.Conn, error) {
	c, err := o.dial(time.Now().Add(o.timeout))
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read response: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

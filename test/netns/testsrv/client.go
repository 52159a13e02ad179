package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cmdGet makes -n requests with Go net/http (new connection each) and
// prints one JSON line per request: status, body, err, ms.
func cmdGet(args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	cacert := fs.String("cacert", "", "PEM file of the CA to trust")
	dnsSrv := fs.String("dns", "", "resolve names with this DNS server (ip:port)")
	timeout := fs.Duration("timeout", 5*time.Second, "per request")
	n := fs.Int("n", 1, "requests")
	expect := fs.Int64("expect-bytes", -1, "check the body is this many bytes of the download pattern instead of returning it")
	var resolve multiFlag
	fs.Var(&resolve, "resolve", "host=ip: connect to ip for host (like curl --resolve)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one URL")
	}
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{}, ForceAttemptHTTP2: false}
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			return fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig.RootCAs = pool
	}
	pins := map[string]string{}
	for _, r := range resolve {
		h, ip, _ := strings.Cut(r, "=")
		pins[h] = ip
	}
	d := &net.Dialer{Timeout: *timeout}
	if *dnsSrv != "" {
		d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, *dnsSrv)
		}}
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		if ip, ok := pins[host]; ok {
			addr = net.JoinHostPort(ip, port)
		}
		return d.DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: tr, Timeout: *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := 0; i < *n; i++ {
		t0 := time.Now()
		res := map[string]any{}
		resp, err := client.Get(fs.Arg(0))
		if err == nil && *expect >= 0 {
			res["status"] = resp.StatusCode
			res["bytes"], res["pattern_ok"], err = verify(resp.Body, seedDown, *expect)
			resp.Body.Close()
		} else if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			res["status"], res["body"] = resp.StatusCode, string(body)
			res["content_type"] = resp.Header.Get("Content-Type")
			err = rerr
		}
		if err != nil {
			res["err"] = err.Error()
		}
		res["ms"] = time.Since(t0).Milliseconds()
		emit(res)
	}
	return nil
}

// cmdRaw connects, writes the (Go-quoted) bytes, half-closes and prints
// what came back before EOF or the timeout.
func cmdRaw(args []string) error {
	fs := flag.NewFlagSet("raw", flag.ContinueOnError)
	addr := fs.String("addr", "", "ip:port")
	send := fs.String("send", "", "bytes to send, as a Go string literal body (\\r\\n escapes)")
	timeout := fs.Duration("timeout", 5*time.Second, "connect and read")
	closeWrite := fs.Bool("close-write", false, "half-close after sending")
	if err := fs.Parse(args); err != nil {
		return err
	}
	payload, err := strconv.Unquote(`"` + *send + `"`)
	if err != nil {
		return fmt.Errorf("unquote -send: %w", err)
	}
	t0 := time.Now()
	res := map[string]any{"connected": false}
	defer func() { res["ms"] = time.Since(t0).Milliseconds(); emit(res) }()
	c, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		res["err"] = err.Error()
		return nil
	}
	defer c.Close()
	res["connected"] = true
	c.SetDeadline(time.Now().Add(*timeout))
	if _, err := io.WriteString(c, payload); err != nil {
		res["err"] = "write: " + err.Error()
		return nil
	}
	if *closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	reply, err := io.ReadAll(c)
	res["reply"] = string(reply)
	if err != nil {
		res["err"] = "read: " + err.Error()
	}
	return nil
}

// cmdBulk runs one transfer of the half-close protocol (see serveRaw) and
// checks the bytes that came back.
func cmdBulk(args []string) error {
	fs := flag.NewFlagSet("bulk", flag.ContinueOnError)
	addr := fs.String("addr", "", "ip:port")
	host := fs.String("host", "", "Host header")
	first := fs.String("first", "client", "who half-closes first: client | server")
	up := fs.Int64("up", 0, "bytes to send")
	down := fs.Int64("down", 0, "bytes to expect")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t0 := time.Now()
	res := map[string]any{}
	defer func() { res["ms"] = time.Since(t0).Milliseconds(); emit(res) }()
	c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
	if err != nil {
		res["err"] = "dial: " + err.Error()
		return nil
	}
	tc := c.(*net.TCPConn)
	defer tc.Close()
	head := fmt.Sprintf("POST /halfclose?first=%s&up=%d&down=%d HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n",
		*first, *up, *down, *host, *up)
	type result struct {
		n   int64
		ok  bool
		err error
	}
	got := make(chan result, 1)
	go func() {
		br := bufio.NewReaderSize(tc, 256<<10)
		if err := skipHead(br); err != nil {
			got <- result{err: err}
			return
		}
		n, ok, err := verify(br, seedDown, *down)
		got <- result{n, ok, err}
	}()
	var r result
	var werr error
	haveR := false
	if _, werr = io.WriteString(tc, head); werr == nil {
		if *first == "server" && *up > 0 {
			// Everything but the last byte, then wait for the server's
			// half-close, then the last byte: data must flow after it.
			src := patternReader(seedUp, *up)
			if _, werr = io.CopyN(tc, src, *up-1); werr == nil {
				r, haveR = <-got, true
				_, werr = io.Copy(tc, src)
			}
		} else {
			_, werr = io.Copy(tc, patternReader(seedUp, *up))
		}
	}
	tc.CloseWrite()
	if !haveR {
		r = <-got
	}
	res["up"], res["down"], res["down_ok"] = *up, r.n, r.ok
	if err := errors.Join(werr, r.err); err != nil {
		res["err"] = err.Error()
	}
	return nil
}

// skipHead reads a response head through its empty line.
func skipHead(br *bufio.Reader) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read response head: %w", err)
		}
		if line == "\r\n" {
			return nil
		}
	}
}

// cmdIdle opens n connections that never send a byte, prints how many
// opened, waits for stdin to close, then prints how many are still open.
func cmdIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	addr := fs.String("addr", "", "ip:port")
	n := fs.Int("n", 300, "connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var conns []net.Conn
	var firstErr string
	for i := 0; i < *n; i++ {
		c, err := net.DialTimeout("tcp", *addr, 3*time.Second)
		if err != nil {
			if firstErr == "" {
				firstErr = err.Error()
			}
			continue
		}
		conns = append(conns, c)
	}
	emit(map[string]any{"opened": len(conns), "err": firstErr})
	io.Copy(io.Discard, os.Stdin)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
		c.Close()
	}
	emit(map[string]any{"still_open": open})
	return nil
}

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
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Spec is what one serve process listens on, read from a JSON file.
type Spec struct {
	HTTP  []string `json:"http"`  // plain HTTP listen addresses
	HTTPS []string `json:"https"` // HTTPS listen addresses (Cert, Key)
	Raw   []string `json:"raw"`   // half-close transfer protocol (see serveRaw)
	Cert  string   `json:"cert"`
	Key   string   `json:"key"`
	// Labels names the service behind a local IP, for response bodies.
	Labels map[string]string `json:"labels"`
	DNS    []string          `json:"dns"`    // DNS listen addresses, UDP and TCP
	Zone   map[string]Record `json:"zone"`   // name -> every record, every time
	Rotate map[string]Record `json:"rotate"` // name -> one record per query, in turn
}

// Record holds the addresses of a name, or (CNAME, its first entry) the
// name it is an alias of, and its HTTPS records (RDATA in zone-file
// syntax: `1 . alpn="h3,h2" ech="..."`).
type Record struct {
	A     []string `json:"a"`
	AAAA  []string `json:"aaaa"`
	CNAME []string `json:"cname"`
	HTTPS []string `json:"https"`
}

var emitMu sync.Mutex

// event prints a server event line; lines of concurrent handlers never mix.
func event(fields map[string]any) {
	emitMu.Lock()
	defer emitMu.Unlock()
	emit(fields)
}

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	specPath := fs.String("spec", "", "JSON spec file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*specPath)
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("parse spec %s: %w", *specPath, err)
	}
	h := &httpHandler{labels: spec.Labels}
	for _, a := range spec.HTTP {
		if err := serveHTTP(a, nil, h); err != nil {
			return err
		}
	}
	if len(spec.HTTPS) > 0 {
		cert, err := tls.LoadX509KeyPair(spec.Cert, spec.Key)
		if err != nil {
			return fmt.Errorf("load certificate: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		for _, a := range spec.HTTPS {
			if err := serveHTTP(a, tc, h); err != nil {
				return err
			}
		}
	}
	for _, a := range spec.Raw {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("listen raw %s: %w", a, err)
		}
		go acceptRaw(ln)
	}
	if len(spec.DNS) > 0 {
		if err := serveDNS(spec.DNS, newZone(spec.Zone, spec.Rotate)); err != nil {
			return err
		}
	}
	event(map[string]any{"ev": "ready"})
	select {}
}

// serveHTTP listens on addr (TLS when tc is set) and emits a "conn" event
// for every TCP connection, before any byte is read, and a "closed" event
// with the bytes read from it ("in", TCP payload) when it ends.
func serveHTTP(addr string, tc *tls.Config, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	ln := countingListener{l}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				event(map[string]any{"ev": "conn", "local": c.LocalAddr().String(), "remote": c.RemoteAddr().String(), "tls": tc != nil})
			case http.StateClosed, http.StateHijacked:
				event(map[string]any{"ev": "closed", "local": c.LocalAddr().String(), "remote": c.RemoteAddr().String(), "in": readFrom(c)})
			}
		}}
	if tc != nil {
		srv.TLSConfig = tc
		go srv.ServeTLS(ln, "", "")
		return nil
	}
	go srv.Serve(ln)
	return nil
}

// countingListener's connections count the bytes read from them.
type countingListener struct{ net.Listener }

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c}, nil
}

type countingConn struct {
	net.Conn
	in atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(int64(n))
	return n, err
}

// readFrom is the bytes read from c so far (through TLS: its TCP
// connection's).
func readFrom(c net.Conn) int64 {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*countingConn); ok {
		return cc.in.Load()
	}
	return -1
}

type httpHandler struct{ labels map[string]string }

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	la := ""
	if local != nil {
		la = local.String()
	}
	label := h.labelOf(la)
	event(map[string]any{"ev": "http", "local": la, "remote": r.RemoteAddr, "label": label, "host": r.Host,
		"method": r.Method, "uri": r.RequestURI, "tls": r.TLS != nil, "proto": r.Proto})
	q := r.URL.Query()
	switch r.URL.Path {
	case "/bytes":
		n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, patternReader(seedDown, n))
	case "/drip":
		drip(w, q)
	case "/count":
		n, err := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "got %d bytes (%v)\n", n, err)
	case "/ws":
		websocketEcho(w, r)
	default:
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello from %s (host %s)\n", label, r.Host)
	}
}

// websocketEcho answers an Upgrade: websocket request with 101 and echoes
// every byte after it until the client closes (no framing: the test only
// needs the upgrade to go through and bytes to flow both ways after it).
func websocketEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "websocket upgrade expected", http.StatusBadRequest)
		return
	}
	c, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	if brw.Flush() == nil {
		_, _ = io.Copy(c, brw)
	}
}

// labelOf names the service at a local address (its IP's label, or the IP).
func (h *httpHandler) labelOf(local string) string {
	host, _, err := net.SplitHostPort(local)
	if err != nil {
		return local
	}
	if l, ok := h.labels[host]; ok {
		return l
	}
	return host
}

// drip sends n pattern bytes in ten chunks spread over ms milliseconds.
func drip(w http.ResponseWriter, q url.Values) {
	n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
	ms, _ := strconv.Atoi(q.Get("ms"))
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	src := patternReader(seedDown, n)
	chunk := max(n/10, 1)
	f, _ := w.(http.Flusher)
	for sent := int64(0); sent < n; sent += chunk {
		if _, err := io.CopyN(w, src, min(chunk, n-sent)); err != nil {
			return
		}
		if f != nil {
			f.Flush()
		}
		time.Sleep(time.Duration(ms) * time.Millisecond / 10)
	}
}

func acceptRaw(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		event(map[string]any{"ev": "conn", "local": c.LocalAddr().String(), "remote": c.RemoteAddr().String(), "raw": true})
		go serveRaw(c.(*net.TCPConn))
	}
}

// serveRaw speaks the half-close transfer protocol: a request head "POST
// /halfclose?first=client|server&up=N&down=M" (with Content-Length: N when
// N > 0), then N bytes; the answer is a head "HTTP/1.1 200 OK" with
// Content-Length: M, then M bytes, then the close. It is framed as HTTP so
// that it passes egressfw, which reads every request on a plain-HTTP port.
// first=client: read the client's N bytes to EOF, then answer and close.
// first=server: answer and half-close at once while reading the client's
// bytes to EOF. The event reports what arrived.
func serveRaw(c *net.TCPConn) {
	defer c.Close()
	ev := map[string]any{"ev": "raw", "local": c.LocalAddr().String(), "remote": c.RemoteAddr().String()}
	br := bufio.NewReaderSize(c, 64<<10)
	line, err := br.ReadString('\n')
	if err != nil {
		ev["err"] = "read request line: " + err.Error()
		event(ev)
		return
	}
	for { // skip the rest of the head
		l, err := br.ReadString('\n')
		if err != nil {
			ev["err"] = "read head: " + err.Error()
			event(ev)
			return
		}
		if l == "\r\n" {
			break
		}
	}
	f := strings.Fields(line)
	u, err := url.Parse(f[min(1, len(f)-1)])
	if err != nil {
		ev["err"] = "parse target: " + err.Error()
		event(ev)
		return
	}
	q := u.Query()
	up, _ := strconv.ParseInt(q.Get("up"), 10, 64)
	down, _ := strconv.ParseInt(q.Get("down"), 10, 64)
	ev["first"] = q.Get("first")
	var got int64
	var ok bool
	var rerr, werr error
	answer := func() error {
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", down); err != nil {
			return err
		}
		_, err := io.Copy(c, patternReader(seedDown, down))
		return err
	}
	if q.Get("first") == "server" {
		done := make(chan struct{})
		go func() { got, ok, rerr = verify(br, seedUp, up); close(done) }()
		werr = answer()
		c.CloseWrite()
		<-done
	} else {
		got, ok, rerr = verify(br, seedUp, up)
		werr = answer()
	}
	ev["up_bytes"], ev["up_ok"] = got, ok
	if err := errors.Join(rerr, werr); err != nil {
		ev["err"] = err.Error()
	}
	event(ev)
}

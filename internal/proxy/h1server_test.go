package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream is a keep-alive HTTP/1.1 server standing in for a site behind
// the relay: it records every byte it receives (its access log, byte for
// byte) and every request it served. /ws upgrades to an echo after a 101,
// /switch answers 101 to any request, /bytes?n=N sends N bytes.
type upstream struct {
	addr string
	mu   sync.Mutex
	raw  bytes.Buffer
	reqs []string // "METHOD host path body"
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: ln.Addr().String()}
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(recordingListener{ln, u})
	t.Cleanup(func() { srv.Close() })
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, fmt.Sprintf("%s %s %s %s", r.Method, r.Host, r.URL.Path, body))
	u.mu.Unlock()
	switch r.URL.Path {
	case "/ws", "/switch":
		if r.URL.Path == "/ws" && !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			fmt.Fprint(w, "no upgrade asked")
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		_, _ = io.Copy(c, brw) // echo until the client closes
	case "/bytes":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(bytes.Repeat([]byte{'x'}, n))
	default:
		fmt.Fprintf(w, "ok %s %s", r.Host, r.URL.Path)
	}
}

// received is every byte the server received so far, all connections.
func (u *upstream) received() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.raw.String()
}

// requests is what the server served so far.
func (u *upstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.reqs...)
}

type recordingListener struct {
	net.Listener
	u *upstream
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, u: l.u}, nil
}

type recordingConn struct {
	net.Conn
	u *upstream
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.u.mu.Lock()
	c.u.raw.Write(p[:n])
	c.u.mu.Unlock()
	return n, err
}

// response is one response the client read.
type response struct {
	status int
	body   string
}

func (r response) String() string { return fmt.Sprintf("%d %q", r.status, r.body) }

// readResponses reads the responses to requests of the given methods, in
// order, until one fails (EOF: the connection ended).
func readResponses(c net.Conn, methods ...string) []response {
	br := bufio.NewReader(c)
	var out []response
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		out = append(out, response{resp.StatusCode, string(b)})
	}
	return out
}

func statuses(rs []response) string {
	var s []string
	for _, r := range rs {
		s = append(s, strconv.Itoa(r.status))
	}
	return strings.Join(s, " ")
}

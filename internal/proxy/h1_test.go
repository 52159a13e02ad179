package proxy

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/h1relay"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// h1Config adds a tenant that may reach the internal wiki by name on port
// 80 (allow_internal), behind an ingress that also serves admin, and one
// whose allow_domains lists *.example.test only.
const h1Config = `
[[tenant]]
name = "intra"
uids = [1004]
  [[tenant.allow_internal]]
  host = "wiki.example.com"
  ports = [80]
[[tenant]]
name = "narrow"
uids = [1005]
allow_domains = ["*.example.test"]
`

// h1Harness is the harness with two sites behind keep-alive servers that
// record what they receive: site1.example.test (198.51.100.50, also named
// shared.example.test) and the internal ingress 10.20.0.20:80 (wiki and
// admin). other.example.test is a public name elsewhere (198.51.100.51).
func h1Harness(t *testing.T) (*harness, *upstream, *upstream) {
	t.Helper()
	h := newHarness(t, h1Config)
	site, ingress := newUpstream(t), newUpstream(t)
	h.net.Route("198.51.100.50:80", site.addr)
	h.net.Route("10.20.0.20:80", ingress.addr)
	h.dns.Set("site1.example.test", "198.51.100.50")
	h.dns.Set("shared.example.test", "198.51.100.50")
	h.dns.Set("other.example.test", "198.51.100.51")
	h.dns.Set("admin.example.com", "10.20.0.20")
	h.dns.Set("mixed.example.test", "198.51.100.50", "10.20.0.10")
	return h, site, ingress
}

func reqGET(host, path string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
}

// TestFollowUpRequestsJudged: every request on a kept-alive or pipelined
// connection is judged as the first one is. Allowed ones are served; the
// first refused one gets egressfw's 403 after the responses before it, and
// neither it nor anything after it reaches the server: its access log (the
// bytes it received) holds exactly the allowed requests.
func TestFollowUpRequestsJudged(t *testing.T) {
	h, site, ingress := h1Harness(t)
	tests := []struct {
		name, tenant, orig string
		send               []string // requests, written one by one (pipelined when more than one per element)
		methods            []string // of the responses to read; GET when nil
		want               string   // statuses read
		served             int      // requests the server saw on this connection
		reason             string   // of the refused request's log line
		refused            string   // the refused request's first bytes: the server receives exactly what precedes them
		internal           bool     // the connection goes to the internal ingress
	}{
		{name: "a deny-listed name second", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), reqGET("x.blocked.example", "/2")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "denied_domain"},
		{name: "a name off the allow list second", tenant: "narrow", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), reqGET("public.example.net", "/2")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "not_allowed_domain"},
		{name: "allow_internal by name does not open the ingress's other hosts", tenant: "intra", orig: "10.20.0.20:80",
			send: []string{reqGET("wiki.example.com", "/1"), reqGET("admin.example.com", "/2")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "internal_address", internal: true},
		{name: "a public name at another address", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), reqGET("other.example.test", "/2")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "not_on_connection"},
		{name: "a later name that does not resolve", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), reqGET("nope.example.test", "/2")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "dns_nxdomain"},
		{name: "a name with an internal address", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), reqGET("mixed.example.test", "/2")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "internal_address"},
		{name: "pipelined: nothing after the refused one", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + reqGET("x.blocked.example", "/2") + reqGET("site1.example.test", "/3")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "denied_domain"},
		{name: "one name in different spellings, and another name at the same address", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + reqGET("SITE1.example.test.", "/2") + reqGET("site1.example.test:80", "/3") +
				"GET http://Site1.Example.Test/4 HTTP/1.1\r\nHost: site1.example.test\r\n\r\n" + reqGET("shared.example.test", "/5")},
			want: "200 200 200 200 200", served: 5},
		{name: "chunked upload, then a second request", tenant: "web", orig: "198.51.100.50:80",
			send: []string{"POST /up HTTP/1.1\r\nHost: site1.example.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" + reqGET("site1.example.test", "/2")},
			want: "200 200", served: 2},
		{name: "a request hidden in a body is body", tenant: "web", orig: "198.51.100.50:80",
			send: []string{"POST /1 HTTP/1.1\r\nHost: site1.example.test\r\nContent-Length: 45\r\n\r\n" +
				reqGET("x.blocked.example", "/admin")[:45] + reqGET("site1.example.test", "/2")},
			methods: []string{"POST", "GET"}, want: "200 200", served: 2},
		{name: "Content-Length and Transfer-Encoding", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "POST /2 HTTP/1.1\r\nHost: site1.example.test\r\nContent-Length: 5\r\n" +
				"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + reqGET("x.blocked.example", "/admin")},
			want: "200 403", served: 1, refused: "POST /2 ", reason: "malformed"},
		{name: "two different Content-Length", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "POST /2 HTTP/1.1\r\nHost: site1.example.test\r\nContent-Length: 0\r\n" +
				"Content-Length: 35\r\n\r\n" + reqGET("x.blocked.example", "/a")},
			want: "200 403", served: 1, refused: "POST /2 ", reason: "malformed"},
		{name: "Transfer-Encoding not chunked last", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "POST /2 HTTP/1.1\r\nHost: site1.example.test\r\n" +
				"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
			want: "200 403", served: 1, refused: "POST /2 ", reason: "malformed"},
		{name: "obs-fold", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "GET /2 HTTP/1.1\r\nHost: site1.example.test\r\nX: a\r\n b\r\n\r\n"},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "malformed"},
		{name: "a bare CR", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "GET /2 HTTP/1.1\r\nHost: site1.example.test\r\nX: a\rY: b\r\n\r\n"},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "malformed"},
		{name: "a NUL in a header", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "GET /2 HTTP/1.1\r\nHost: site1.example.test\r\nX: a\x00b\r\n\r\n"},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "malformed"},
		{name: "Upgrade: h2c", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "GET /2 HTTP/1.1\r\nHost: site1.example.test\r\nConnection: Upgrade, HTTP2-Settings\r\n" +
				"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "h2_prior_knowledge"},
		{name: "the HTTP/2 preface after a request", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
			want: "200 403", served: 1, refused: "PRI * HTTP/2.0", reason: "h2_prior_knowledge"},
		{name: "CONNECT after a request", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1") + "CONNECT 10.20.0.10:80 HTTP/1.1\r\nHost: 10.20.0.10:80\r\n\r\n"},
			want: "200 403", served: 1, refused: "CONNECT ", reason: "connect_method"},
		{name: "a Host port that is not the connection's", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), reqGET("site1.example.test:8080", "/2")},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "port_mismatch"},
		{name: "no Host", tenant: "web", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), "GET /2 HTTP/1.1\r\n\r\n"},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "malformed"},
		{name: "HEAD, then GET", tenant: "web", orig: "198.51.100.50:80",
			send:    []string{"HEAD /1 HTTP/1.1\r\nHost: site1.example.test\r\n\r\n" + reqGET("site1.example.test", "/2")},
			methods: []string{"HEAD", "GET"}, want: "200 200", served: 2},
		{name: "HTTP/1.0 keep-alive", tenant: "web", orig: "198.51.100.50:80",
			send: []string{"GET /1 HTTP/1.0\r\nHost: site1.example.test\r\nConnection: keep-alive\r\n\r\n",
				"GET /2 HTTP/1.0\r\nHost: x.blocked.example\r\nConnection: keep-alive\r\n\r\n"},
			want: "200 403", served: 1, refused: "GET /2 ", reason: "denied_domain"},
		{name: "nothing after Connection: close", tenant: "web", orig: "198.51.100.50:80",
			send: []string{"GET /1 HTTP/1.1\r\nHost: site1.example.test\r\nConnection: close\r\n\r\n" + reqGET("x.blocked.example", "/2")},
			want: "200", served: 1, refused: "GET /2 "},
		{name: "report mode lets a refused one through", tenant: "audit", orig: "198.51.100.50:80",
			send: []string{reqGET("site1.example.test", "/1"), reqGET("other.example.test", "/2")},
			want: "200 200", served: 2, reason: "not_on_connection"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := site
			if tc.internal {
				srv = ingress
			}
			raw0, served0 := len(srv.received()), len(srv.requests())
			c := h.connect(tc.tenant, tc.orig, false)
			methods := tc.methods
			for _, s := range tc.send {
				_, _ = io.WriteString(c, s)
				for range strings.Count(s, " HTTP/") {
					if tc.methods == nil {
						methods = append(methods, "GET")
					}
				}
				time.Sleep(20 * time.Millisecond) // one by one, unless pipelined in one element
			}
			if got := readResponses(c, methods...); statuses(got) != tc.want {
				t.Fatalf("responses %v, want statuses %s", got, tc.want)
			}
			if n := len(srv.requests()) - served0; n != tc.served {
				t.Errorf("the server served %d requests, want %d: %v", n, tc.served, srv.requests()[served0:])
			}
			if tc.reason != "" {
				h.logs.WaitOf(t, "request", "for the refused request", func(m map[string]any) bool {
					return m["reason"] == tc.reason && m["tenant"] == tc.tenant
				})
			}
			if tc.refused != "" {
				all := strings.Join(tc.send, "")
				want := all[:strings.Index(all, tc.refused)]
				if got := srv.received()[raw0:]; got != want {
					t.Errorf("the server received %q; want exactly the requests before the refused one, %q", got, want)
				}
			}
		})
	}
	if n := h.internal.Hits.Load(); n != 0 {
		t.Errorf("the internal stand-in was reached %d times", n)
	}
}

// TestRefusedRequestBytesNeverForwarded: the server receives, byte for
// byte, the allowed requests of a pipelined write and nothing of the
// refused one or what follows it.
func TestRefusedRequestBytesNeverForwarded(t *testing.T) {
	h, site, _ := h1Harness(t)
	first := reqGET("site1.example.test", "/1") + "POST /2 HTTP/1.1\r\nHost: site1.example.test\r\nContent-Length: 4\r\n\r\nbody"
	refused := reqGET("x.blocked.example", "/secret") + reqGET("site1.example.test", "/3")
	c := h.connect("web", "198.51.100.50:80", false)
	_, _ = io.WriteString(c, first+refused)
	if got := statuses(readResponses(c, "GET", "POST", "GET", "GET")); got != "200 200 403" {
		t.Fatalf("statuses %q, want 200 200 403", got)
	}
	if got := site.received(); got != first {
		t.Fatalf("the server received %q, want exactly %q", got, first)
	}
}

// TestFollowUpLogAndMetrics: a refused later request has a log line of its
// own (msg "request") naming the request; allowed ones are counted in
// egressfw_http_requests_total, and the connection's line gives the
// number of requests forwarded.
func TestFollowUpLogAndMetrics(t *testing.T) {
	h, _, _ := h1Harness(t)
	c := h.connect("web", "198.51.100.50:80", false)
	_, _ = io.WriteString(c, reqGET("site1.example.test", "/1")+reqGET("site1.example.test", "/2")+reqGET("shared.example.test", "/3")+
		reqGET("x.blocked.example", "/4"))
	if got := statuses(readResponses(c, "GET", "GET", "GET", "GET")); got != "200 200 200 403" {
		t.Fatalf("statuses %q", got)
	}
	req := h.logs.WaitOf(t, "request", "a request line", func(map[string]any) bool { return true })
	for k, want := range map[string]string{"tenant": "web", "name": "x.blocked.example", "decision": "deny",
		"reason": "denied_domain", "request": "4", "orig_dst": "198.51.100.50:80", "dialed": "198.51.100.50:80", "proto": "http"} {
		if fmt.Sprint(req[k]) != want {
			t.Errorf("request line %s = %v, want %s", k, req[k], want)
		}
	}
	conn := h.waitLog(map[string]any{"name": "site1.example.test", "orig_dst": "198.51.100.50:80"})
	if fmt.Sprint(conn["requests"]) != "3" || conn["decision"] != "allow" {
		t.Errorf("connection line %v; want decision allow, requests 3", conn)
	}
	allow := testutil.ToFloat64(h.srv.metrics.requests.WithLabelValues("web", "allow"))
	deny := testutil.ToFloat64(h.srv.metrics.requests.WithLabelValues("web", "deny"))
	if allow != 2 || deny != 1 {
		t.Errorf("egressfw_http_requests_total web: allow %v, deny %v; want 2 and 1", allow, deny)
	}
}

// TestWebSocketUpgrade: a WebSocket upgrade is spliced as it is once the
// server answers 101 (what follows is no longer HTTP, so it is not read);
// a declined upgrade keeps the connection judged; a 101 to a request that
// did not ask for an upgrade ends the connection.
func TestWebSocketUpgrade(t *testing.T) {
	h, site, _ := h1Harness(t)
	upgrade := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: site1.example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	}
	t.Run("switched", func(t *testing.T) {
		c := h.connect("web", "198.51.100.50:80", false)
		_, _ = io.WriteString(c, reqGET("site1.example.test", "/1")+upgrade("/ws"))
		br := readUntil(t, c, "\r\n\r\n", 2) // the 200's head... and the 101's
		if !strings.Contains(br, "HTTP/1.1 101 Switching Protocols") {
			t.Fatalf("no 101: %q", br)
		}
		// Frames, even ones that look like a request for a refused name.
		frames := reqGET("x.blocked.example", "/not-a-request") + "\x81\x05hello"
		_, _ = io.WriteString(c, frames)
		if got := readN(t, c, len(frames)); got != frames {
			t.Fatalf("echo %q, want %q", got, frames)
		}
	})
	t.Run("declined", func(t *testing.T) {
		c := h.connect("web", "198.51.100.50:80", false)
		_, _ = io.WriteString(c, upgrade("/no-ws")+reqGET("x.blocked.example", "/2"))
		if got := statuses(readResponses(c, "GET", "GET")); got != "200 403" {
			t.Fatalf("statuses %q, want 200 403 (the connection stays judged)", got)
		}
	})
	t.Run("101 unasked", func(t *testing.T) {
		c := h.connect("web", "198.51.100.50:80", false)
		_, _ = io.WriteString(c, reqGET("site1.example.test", "/switch"))
		out, err := io.ReadAll(c)
		if err == nil || !strings.Contains(err.Error(), "reset") {
			t.Fatalf("after an unasked 101: %q, %v; want the connection reset", out, err)
		}
		h.waitLog(map[string]any{"name": "site1.example.test", "error": "relay upstream to client: 101 Switching Protocols to a request that did not ask for an upgrade egressfw follows"})
	})
	if n := strings.Count(strings.Join(site.requests(), "\n"), "blocked"); n != 0 {
		t.Errorf("the server served %d requests for the blocked name", n)
	}
}

// TestExpectContinueAndLargeBodies: an upload that waits for 100 Continue
// gets it through the relay; bodies of several MB each way are spliced by
// length and the next request follows.
func TestExpectContinueAndLargeBodies(t *testing.T) {
	h, site, _ := h1Harness(t)
	c := h.connect("web", "198.51.100.50:80", false)
	const n = 3 << 20
	_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: site1.example.test\r\nExpect: 100-continue\r\nContent-Length: 3145728\r\n\r\n")
	if got := readUntil(t, c, "\r\n\r\n", 1); !strings.HasPrefix(got, "HTTP/1.1 100 Continue") {
		t.Fatalf("got %q, want 100 Continue", got)
	}
	_, _ = c.Write(bytesOf('u', n))
	_, _ = io.WriteString(c, fmt.Sprintf("GET /bytes?n=%d HTTP/1.1\r\nHost: site1.example.test\r\n\r\n", n)+reqGET("site1.example.test", "/3"))
	got := readResponses(c, "POST", "GET", "GET")
	if statuses(got) != "200 200 200" || len(got[1].body) != n {
		t.Fatalf("responses %d %q", len(got), statuses(got))
	}
	if r := site.requests(); len(r) != 3 || len(r[0]) != len("POST site1.example.test /up ")+n {
		t.Fatalf("the server saw %d requests (first %d bytes)", len(r), len(r[0]))
	}
}

// TestPipelineBeyondTheCap: more pipelined requests than may be in flight
// are all served, in order (the rest wait for responses).
func TestPipelineBeyondTheCap(t *testing.T) {
	h, _, _ := h1Harness(t)
	c := h.connect("web", "198.51.100.50:80", false)
	var all strings.Builder
	var methods []string
	for i := range 3 * h1relay.MaxInFlight {
		all.WriteString(reqGET("site1.example.test", fmt.Sprintf("/%d", i)))
		methods = append(methods, "GET")
	}
	_, _ = io.WriteString(c, all.String())
	got := readResponses(c, methods...)
	if len(got) != len(methods) {
		t.Fatalf("%d responses of %d", len(got), len(methods))
	}
	for i, r := range got {
		if want := fmt.Sprintf("ok site1.example.test /%d", i); r.body != want {
			t.Fatalf("response %d: %v, want %q", i, r, want)
		}
	}
}

// TestFollowUpHeadTimeout: a later head that does not come whole within
// listener.peek_timeout (300ms here) is refused as a first one is.
func TestFollowUpHeadTimeout(t *testing.T) {
	h, site, _ := h1Harness(t)
	c := h.connect("web", "198.51.100.50:80", false)
	_, _ = io.WriteString(c, reqGET("site1.example.test", "/1")+"GET /2 HTTP/1.1\r\nHost: site")
	t0 := time.Now()
	if got := statuses(readResponses(c, "GET", "GET")); got != "200 403" {
		t.Fatalf("statuses %q, want 200 403", got)
	}
	if d := time.Since(t0); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("refused after %v, want about the peek timeout", d)
	}
	h.logs.WaitOf(t, "request", "peek timeout", func(m map[string]any) bool { return m["reason"] == "peek_timeout" })
	if n := len(site.requests()); n != 1 {
		t.Errorf("the server served %d requests, want 1", n)
	}
}

// TestMalformedChunkResets: a chunked body whose framing turns malformed
// after its head went upstream cannot be answered in order: the connection
// is reset, and nothing from the bad line on is forwarded.
func TestMalformedChunkResets(t *testing.T) {
	h, site, _ := h1Harness(t)
	c := h.connect("web", "198.51.100.50:80", false)
	head := "POST /up HTTP/1.1\r\nHost: site1.example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
	_, _ = io.WriteString(c, head+"5 \r\nworld\r\n0\r\n\r\n"+reqGET("x.blocked.example", "/2"))
	if _, err := io.ReadAll(c); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v, want a reset", err)
	}
	h.logs.WaitOf(t, "request", "malformed body", func(m map[string]any) bool { return m["reason"] == "malformed" })
	if got := site.received(); !strings.HasPrefix(head, got) {
		t.Fatalf("the server received %q, want at most %q (nothing from the bad line on)", got, head)
	}
}

func bytesOf(c byte, n int) []byte { return []byte(strings.Repeat(string(c), n)) }

// readUntil reads from c until sep has been seen n times, and returns
// what it read.
func readUntil(t *testing.T, c io.Reader, sep string, n int) string {
	t.Helper()
	var got []byte
	b := make([]byte, 1)
	for strings.Count(string(got), sep) < n {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("read after %q: %v", got, err)
		}
		got = append(got, b[0])
	}
	return string(got)
}

func readN(t *testing.T, c io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

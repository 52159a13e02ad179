package netns

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// perRequestTenants: "a" (cgroup) has a deny list and may reach the
// internal service svc.example.com on port 80 by name; "b" (uid) may
// reach *.example.test only.
func (tp *topo) perRequestTenants() string {
	return tp.tenant("a", "a", 0, `deny_domains = ["blocked.example.test"]
  [[tenant.allow_internal]]
  host = "svc.example.com"
  ports = [80]`) + tp.tenant("b", "", tp.uid, `allow_domains = ["*.example.test"]`)
}

// pyKeepAlive makes one GET per Host argument on one http.client
// connection to argv[1]:80, and prints "STATUS BODY" or "ERR error" per
// request; "POSTCHUNKED host" sends a chunked upload to /count instead.
const pyKeepAlive = `
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
for arg in sys.argv[2:]:
    try:
        if arg.startswith("POSTCHUNKED "):
            host = arg.split(" ", 1)[1]
            c.request("POST", "/count", body=iter([b"hello ", b"chunked ", b"world"]),
                      headers={"Host": host, "Transfer-Encoding": "chunked"}, encode_chunked=True)
        else:
            c.request("GET", "/", headers={"Host": arg})
        r = c.getresponse()
        print(r.status, r.read().decode().strip())
    except Exception as e:
        print("ERR", repr(e).replace("\n", " "))
        break
`

// TestPerRequest: every request of a kept-alive or pipelined plain-HTTP
// connection is judged as the first one is, with real clients (curl,
// Python http.client, Go net/http) and raw pipelined bytes: allowed ones
// are served on the one connection (the server sees them arrive on it),
// and each refusal case gets egressfw's 403 with the server's access log
// showing that nothing of the refused request reached it.
func TestPerRequest(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.perRequestTenants()}))
	a, b := tp.inCgroup("a"), tp.asUID()
	pub, svc := ipPublic+":80", ipSvc+":80"
	// hostsSeen lists the Host of each request a server served since mark,
	// and the connections (client ports) they came on, once its events
	// have settled (a late one was blamed on the next case).
	hostsSeen := func(s *server, ip string, mark int) (hosts []string, conns map[string]bool) {
		s.settle()
		conns = map[string]bool{}
		evs := s.filter(func(e srvEvent) bool { return e.Ev == "http" && e.localIP() == ip })
		for _, e := range evs[min(mark, len(evs)):] {
			hosts = append(hosts, e.Host)
			conns[e.Remote] = true
		}
		return hosts, conns
	}
	mark := func(s *server, ip string) int { h, _ := hostsSeen(s, ip, 0); return len(h) }

	t.Run("curl reuses one connection for two URLs", func(t *testing.T) {
		m, i := mark(tp.pub, ipPublic), d.since()
		r := tp.run(a, 15*time.Second, "curl", "-sS", "-m", "5", "--resolve", "www.example.com:80:"+ipPublic,
			"http://www.example.com/", "http://www.example.com/count")
		if !strings.Contains(r.out, "hello from public") || !strings.Contains(r.out, "got 0 bytes") {
			t.Fatalf("curl: %q %q", r.out, r.errOut)
		}
		hosts, conns := hostsSeen(tp.pub, ipPublic, m)
		if len(hosts) != 2 || len(conns) != 1 {
			t.Errorf("the site served %v on %d connections, want 2 requests on 1", hosts, len(conns))
		}
		if l, ok := d.connLog(i, "www.example.com", pub); !ok || l["requests"] != float64(2) {
			t.Errorf("connection line %v, want requests 2", l)
		}
	})

	t.Run("curl: Expect 100-continue upload, then a second URL on the connection", func(t *testing.T) {
		m := mark(tp.pub, ipPublic)
		r := tp.run(a, 15*time.Second, "curl", "-sS", "-v", "-m", "5", "--resolve", "www.example.com:80:"+ipPublic,
			"-H", "Expect: 100-continue", "--data-binary", strings.Repeat("x", 5000), "http://www.example.com/count",
			"--next", "--resolve", "www.example.com:80:"+ipPublic, "http://www.example.com/")
		if !strings.Contains(r.out, "got 5000 bytes") || !strings.Contains(r.out, "hello from public") {
			t.Fatalf("curl: %q %q", r.out, r.errOut)
		}
		if !strings.Contains(r.errOut, "< HTTP/1.1 100 Continue") || !strings.Contains(r.errOut, "Re-using existing connection") {
			t.Errorf("curl did not get the server's 100 Continue on one reused connection: %s", r.errOut)
		}
		if hosts, conns := hostsSeen(tp.pub, ipPublic, m); len(hosts) != 2 || len(conns) != 1 {
			t.Errorf("the site served %v on %d connections, want 2 requests on 1", hosts, len(conns))
		}
	})

	t.Run("Python http.client keep-alive, a deny-listed name third", func(t *testing.T) {
		if err := lookPython(); err != nil {
			t.Skip(err)
		}
		m := mark(tp.pub, ipPublic)
		r := tp.run(a, 30*time.Second, "/usr/bin/python3", "-c", pyKeepAlive, ipPublic,
			"www.example.com", "site1.example.test", "blocked.example.test")
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "200 hello from public") || !strings.HasPrefix(lines[1], "200 ") ||
			!strings.HasPrefix(lines[2], "403 egressfw denied this request: \"blocked.example.test\" is on the deny list") {
			t.Fatalf("python: %q (stderr %s)", r.out, r.errOut)
		}
		if hosts, conns := hostsSeen(tp.pub, ipPublic, m); len(hosts) != 2 || len(conns) != 1 || slices.Contains(hosts, "blocked.example.test") {
			t.Errorf("the site served %v on %d connections, want www and site1 on one", hosts, len(conns))
		}
	})

	t.Run("Python http.client, a chunked upload then a second request", func(t *testing.T) {
		if err := lookPython(); err != nil {
			t.Skip(err)
		}
		r := tp.run(a, 30*time.Second, "/usr/bin/python3", "-c", pyKeepAlive, ipPublic,
			"POSTCHUNKED www.example.com", "www.example.com")
		if r.out != "200 got 19 bytes (<nil>)\n200 hello from public (host www.example.com)\n" {
			t.Fatalf("python: %q (stderr %s)", r.out, r.errOut)
		}
	})

	t.Run("Go net/http keep-alive, a name off the allow list second", func(t *testing.T) {
		m := mark(tp.pub, ipPublic)
		var res []struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
			Reused bool   `json:"reused"`
			Err    string `json:"err"`
		}
		tp.helper(b, 30*time.Second, &res, "keepalive", "-addr", pub, "site1.example.test", "site1.example.test", "public.example.net")
		if len(res) != 3 || res[0].Status != 200 || res[1].Status != 200 || !res[1].Reused ||
			res[2].Status != 403 || !res[2].Reused || !strings.Contains(res[2].Body, "is not on the allow list") {
			t.Fatalf("go: %+v", res)
		}
		if hosts, conns := hostsSeen(tp.pub, ipPublic, m); len(hosts) != 2 || len(conns) != 1 || slices.Contains(hosts, "public.example.net") {
			t.Errorf("the site served %v on %d connections, want site1 twice on one", hosts, len(conns))
		}
	})

	t.Run("raw pipelined, one name in different spellings", func(t *testing.T) {
		m := mark(tp.pub, ipPublic)
		r := tp.raw(a, pub, `GET / HTTP/1.1\r\nHost: SITE1.example.test.\r\n\r\n`+
			`GET / HTTP/1.1\r\nHost: site1.example.test:80\r\n\r\n`+
			`GET http://site1.example.test/ HTTP/1.1\r\nHost: site1.example.test\r\nConnection: close\r\n\r\n`)
		if n := strings.Count(r.Reply, "HTTP/1.1 200 OK"); n != 3 {
			t.Fatalf("reply %q: %d responses of 200, want 3", r.Reply, n)
		}
		if hosts, conns := hostsSeen(tp.pub, ipPublic, m); len(hosts) != 3 || len(conns) != 1 {
			t.Errorf("the site served %v on %d connections, want 3 on 1", hosts, len(conns))
		}
	})

	t.Run("WebSocket upgrade", func(t *testing.T) {
		// After the 101 these are frames' bytes, not a request (ASCII: the
		// reply comes back as JSON).
		frames := `frame:hello` + `GET / HTTP/1.1\r\nHost: bi-tool.example.com\r\n\r\n`
		r := tp.raw(a, pub, `GET /ws HTTP/1.1\r\nHost: www.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`+
			`Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`+frames, "-close-write")
		if !strings.HasPrefix(r.Reply, "HTTP/1.1 101 Switching Protocols") ||
			!strings.HasSuffix(r.Reply, "\r\n\r\nframe:helloGET / HTTP/1.1\r\nHost: bi-tool.example.com\r\n\r\n") {
			t.Fatalf("reply %q, want the 101 and the echo", r.Reply)
		}
	})

	// Each refusal: the first request is served, the refused one gets the
	// 403, and the server's access log holds the allowed request only.
	refusals := []struct {
		name       string
		w          who
		addr, send string
		srv        *server
		reason     string
	}{
		{"a deny-listed name second, to a public address", a, pub,
			`GET {P}/ HTTP/1.1\r\nHost: site1.example.test\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: blocked.example.test\r\n\r\n`,
			tp.pub, "denied_domain"},
		{"allow_domains *.example.test, public.example.net second", b, pub,
			`GET {P}/ HTTP/1.1\r\nHost: site1.example.test\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: public.example.net\r\n\r\n`,
			tp.pub, "not_allowed_domain"},
		{"allow_internal svc by name, admin on its ingress second", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: admin.example.com\r\n\r\n`,
			tp.internal, "internal_address"},
		{"allow_internal svc by name, the BI tool second", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: bi-tool.example.com\r\n\r\n`,
			tp.internal, "internal_address"},
		{"pipelined: a refused one and one after it", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: admin.example.com\r\n\r\n` +
				`GET {P}/y HTTP/1.1\r\nHost: svc.example.com\r\n\r\n`,
			tp.internal, "internal_address"},
		{"a request smuggled in Content-Length and Transfer-Encoding", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nPOST {P}/x HTTP/1.1\r\nHost: svc.example.com\r\nContent-Length: 41\r\n` +
				`Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET {P}/y HTTP/1.1\r\nHost: admin.example.com\r\n\r\n`,
			tp.internal, "malformed"},
		{"differing Content-Length", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nPOST {P}/x HTTP/1.1\r\nHost: svc.example.com\r\nContent-Length: 0\r\n` +
				`Content-Length: 44\r\n\r\nGET {P}/y HTTP/1.1\r\nHost: admin.example.com\r\n\r\n`,
			tp.internal, "malformed"},
		{"Transfer-Encoding not chunked last", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nPOST {P}/x HTTP/1.1\r\nHost: svc.example.com\r\n` +
				`Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET {P}/y HTTP/1.1\r\nHost: admin.example.com\r\n\r\n`,
			tp.internal, "malformed"},
		{"obs-fold", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: svc.example.com\r\nX-A: a\r\n b\r\n\r\n`,
			tp.internal, "malformed"},
		{"a bare CR", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: svc.example.com\r\nX-A: a\rX-B: b\r\n\r\n`,
			tp.internal, "malformed"},
		{"a NUL in a header", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: svc.example.com\r\nX-A: a\x00b\r\n\r\n`,
			tp.internal, "malformed"},
		{"Upgrade: h2c", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nGET {P}/x HTTP/1.1\r\nHost: svc.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n` +
				`Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`,
			tp.internal, "h2_prior_knowledge"},
		{"the HTTP/2 preface after a request", a, svc,
			`GET {P}/ HTTP/1.1\r\nHost: svc.example.com\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`,
			tp.internal, "h2_prior_knowledge"},
	}
	for k, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			// Each case's requests carry a path of their own, by which the
			// server's events are told apart.
			p := fmt.Sprintf("/refusal-%d", k)
			i := d.since()
			r := tp.raw(c.w, c.addr, strings.ReplaceAll(c.send, "{P}", p))
			if strings.Count(r.Reply, "HTTP/1.1 200 OK") != 1 || !strings.Contains(r.Reply, "HTTP/1.1 403 Forbidden") {
				t.Errorf("reply %q, want one 200 and egressfw's 403", r.Reply)
			}
			mine := func(e srvEvent) bool { return e.Ev == "http" && strings.HasPrefix(e.URI, p) }
			c.srv.waitFor(mine, 2*time.Second)
			// The upstream connection's close event follows every event
			// of it: then its bytes and its requests are all known. A
			// refused request the server answers itself (400, 501) or
			// whose URI is not the case's (PRI *) shows only in the bytes.
			var up srvEvent
			if evs := c.srv.filter(mine); len(evs) > 0 {
				up = evs[0]
			}
			closed := func(e srvEvent) bool { return e.Ev == "closed" && e.Remote == up.Remote }
			if !c.srv.waitFor(closed, 3*time.Second) {
				t.Fatalf("the upstream connection (%q) was not closed after the refusal", up.Remote)
			}
			if evs := c.srv.filter(mine); len(evs) != 1 || evs[0].URI != p+"/" {
				t.Errorf("the server's access log for this connection: %+v, want the first request only", evs)
			}
			first, _, _ := strings.Cut(strings.ReplaceAll(c.send, "{P}", p), `\r\n\r\n`)
			first, err := strconv.Unquote(`"` + first + `\r\n\r\n"`)
			if err != nil {
				t.Fatal(err)
			}
			if in := c.srv.filter(closed)[0].In; in != int64(len(first)) {
				t.Errorf("the server read %d bytes from the connection, want the first request's %d only", in, len(first))
			}
			isRefusal := func(l logLine) bool {
				return l.str("msg") == "request" && l.str("reason") == c.reason && l.str("decision") == "deny"
			}
			if _, ok := d.waitLogFrom(i, isRefusal, 3*time.Second); !ok {
				t.Errorf("no request line with reason %s", c.reason)
			}
			// One line per refused request: this connection had one.
			time.Sleep(100 * time.Millisecond)
			if n := len(d.linesFrom(i, func(l logLine) bool { return l.str("msg") == "request" })); n != 1 {
				t.Errorf("%d request lines for one refused request, want 1", n)
			}
		})
	}
	if n := tp.internal.count(func(e srvEvent) bool { return e.Ev == "http" && e.Host != "svc.example.com" }); n != 0 {
		t.Errorf("internal servers served %d requests for other names than svc.example.com", n)
	}
	if n := tp.internal.conns(ipBITool); n != 0 {
		t.Errorf("the BI tool accepted %d connections", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

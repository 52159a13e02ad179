package netns

import (
	"strings"
	"testing"
)

// TestHTTPTricks: raw requests that try to smuggle an internal destination
// past the Host check are refused with a 403 and reach no server: two Host
// headers, an absolute-form target that disagrees with Host, CONNECT to an
// internal authority, no Host at all, a Host port that is not the
// connection's, and a case- and dot-disguised internal name.
func TestHTTPTricks(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]"}))
	pub, bi := ipPublic+":80", ipBITool+":80"
	cases := []struct{ name, addr, send string }{
		{"two Host headers", pub, `GET / HTTP/1.1\r\nHost: www.example.com\r\nHost: bi-tool.example.com\r\n\r\n`},
		{"two Host headers, internal first", pub, `GET / HTTP/1.1\r\nHost: bi-tool.example.com\r\nHost: www.example.com\r\n\r\n`},
		{"absolute-form target differs from Host", pub, `GET http://bi-tool.example.com/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n`},
		{"absolute-form internal IP", pub, `GET http://10.20.0.10/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n`},
		{"CONNECT to an internal authority", pub, `CONNECT 10.20.0.10:80 HTTP/1.1\r\nHost: 10.20.0.10:80\r\n\r\n`},
		{"CONNECT by internal name", bi, `CONNECT bi-tool.example.com:443 HTTP/1.1\r\nHost: bi-tool.example.com:443\r\n\r\n`},
		{"no Host to a public IP", pub, `GET / HTTP/1.1\r\n\r\n`},
		{"no Host to the internal IP", bi, `GET / HTTP/1.1\r\n\r\n`},
		{"HTTP/1.0 without Host to the internal IP", bi, `GET / HTTP/1.0\r\n\r\n`},
		{"Host port differs from the connection's", pub, `GET / HTTP/1.1\r\nHost: www.example.com:8080\r\n\r\n`},
		{"upper case and trailing dot", pub, `GET / HTTP/1.1\r\nHost: BI-TOOL.Example.COM.\r\n\r\n`},
		{"Host with whitespace folding", pub, `GET / HTTP/1.1\r\nHost: www.example.com\r\n bi-tool.example.com\r\n\r\n`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tp.raw(tp.inCgroup("a"), c.addr, c.send)
			if !strings.HasPrefix(r.Reply, "HTTP/1.1 403 ") {
				t.Errorf("reply %+v; want egressfw's 403", r)
			}
		})
	}
	tp.settleServers() // a late event must not pass for none
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0", n)
	}
	if n := tp.pub.conns(""); n != 0 {
		t.Errorf("public site accepted %d connections, want 0 (all refused before dialing)", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

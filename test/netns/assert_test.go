package netns

import (
	"strings"
	"testing"
)

// want is the expected outcome of one curl: the HTTP status with a body
// fragment, or (status 0) curl's exit code with a stderr fragment.
type want struct {
	status int
	body   string
	exit   int
	stderr string
}

// Expected outcomes used across tests.
var (
	okPublic  = want{status: 200, body: "hello from public"}
	deniedInt = want{status: 403, body: "is an internal address"}
	// tlsDenied: egressfw's fatal access_denied alert as curl reports it.
	tlsDenied = want{exit: 35, stderr: "access denied"}
	// tlsNoSNI: the alert for a ClientHello without SNI (curl sends none
	// for an IP address).
	tlsNoSNI = want{exit: 35, stderr: "unrecognized name"}
	// reset: the connection refused by a TCP reset.
	reset = want{exit: 7, stderr: "couldn't connect"}
	// dropped: an intercepted SYN that escaped the loop to lo (a socket
	// bound to a device) is dropped in postrouting, where the kernel allows
	// no reject: the client times out, nothing is reached.
	dropped = want{exit: 28, stderr: "timeout was reached"}
)

// check asserts that r is the outcome w.
func check(t *testing.T, what string, r curlRes, w want) {
	t.Helper()
	switch {
	case w.status != 0:
		if r.status != w.status || !strings.Contains(r.body, w.body) {
			t.Errorf("%s: got %v; want status %d with body containing %q", what, r, w.status, w.body)
		}
	default:
		if r.exit != w.exit || !strings.Contains(strings.ToLower(r.stderr), w.stderr) {
			t.Errorf("%s: got %v; want curl exit %d with %q", what, r, w.exit, w.stderr)
		}
	}
}

// resolve is curl's --resolve for host:port to ip (the tenant's own lookup).
func resolve(host, port, ip string) []string {
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return []string{"--resolve", host + ":" + port + ":" + ip}
}

func args(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, v)
		case []string:
			out = append(out, v...)
		}
	}
	return out
}

// curlCase is one named curl request and its expected outcome.
type curlCase struct {
	name string
	args []string
	want want
}

// runCases runs every case as every tenant, each as a subtest named
// "<tenant>/<case>".
func runCases(t *testing.T, tp *topo, tenants []who, cases []curlCase) {
	t.Helper()
	for _, w := range tenants {
		t.Run(w.label, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					check(t, c.name, tp.curl(w, c.args...), c.want)
				})
			}
		})
	}
}

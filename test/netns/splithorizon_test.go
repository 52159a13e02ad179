package netns

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSplitHorizon: the host's resolver is the internal DNS, where
// bi-tool.example.com is an unauthenticated internal HTTP service. A tenant
// that names it, names its IP, scans the private range or points a public
// name at the internal IP reaches nothing internal (the internal servers
// accept no connection at all), while public names keep working.
func TestSplitHorizon(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]"}))
	cases := []curlCase{
		{"public name", args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/"), okPublic},
		{"public name over TLS", args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/"), okPublic},
		{"bi-tool by name", args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/"), deniedInt},
		{"bi-tool by name over TLS", args(resolve("bi-tool.example.com", "443", ipBITool), "https://bi-tool.example.com/"), tlsDenied},
		{"bi-tool name sent to a public IP", args(resolve("bi-tool.example.com", "80", ipPublic), "http://bi-tool.example.com/"), deniedInt},
		{"bi-tool by IP", args("http://" + ipBITool + "/"), deniedInt},
		{"bi-tool by IP over TLS", args("https://" + ipBITool + "/"), tlsNoSNI},
		{"bi-tool by IPv6 ULA", args("http://[" + ip6BITool + "]/"), deniedInt},
		{"public Host at the internal IP", args(resolve("www.example.com", "80", ipBITool), "http://www.example.com/"), okPublic},
		{"public SNI at the internal IP", args(resolve("www.example.com", "443", ipBITool), "https://www.example.com/"), okPublic},
		{"public Host header to the internal IP", args("-H", "Host: www.example.com", "http://"+ipBITool+"/"), okPublic},
		// SO_BINDTODEVICE makes the kernel's re-route after the intercept
		// mark keep the bound device: the packet must still not leave.
		{"bi-tool by IP from a socket bound to the internal interface", args("--connect-timeout", "2", "--interface", "vint", "http://"+ipBITool+"/"), dropped},
		{"non-intercepted port of bi-tool", args("http://" + ipBITool + ":8080/"), reset},
	}
	runCases(t, tp, []who{tp.inCgroup("a"), tp.asUID()}, cases)

	// A scan of the private range, one HTTP request per address, Host = the IP.
	var urls []string
	for i := 1; i <= 32; i++ {
		urls = append(urls, fmt.Sprintf("http://10.20.0.%d/", i))
	}
	urls = append(urls, "http://192.168.0.1/", "http://172.16.0.1/", "http://10.0.0.1/", "http://"+ipHostPub+"/")
	argv := []string{"curl", "-sS", "-m", "3", "-w", "%{http_code}\n"}
	for _, u := range urls {
		argv = append(argv, "-o", "/dev/null", u)
	}
	r := tp.run(tp.inCgroup("a"), time.Minute, argv...)
	codes := strings.Fields(r.out)
	if len(codes) != len(urls) {
		t.Fatalf("scan: %d status codes for %d URLs: %q %s", len(codes), len(urls), r.out, r.errOut)
	}
	for i, c := range codes {
		if c != "403" {
			t.Errorf("scan %s: status %s, want 403 from egressfw", urls[i], c)
		}
	}

	tp.settleServers() // a late event must not pass for none
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0: %v", n, tp.internal.filter(func(srvEvent) bool { return true }))
	}
	wantPublic := 2 * 5 // five allowed cases per tenant
	tp.pub.atLeast(func() int { return tp.pub.requests(ipPublic) }, wantPublic)
	if n := tp.pub.requests(ipPublic); n != wantPublic {
		t.Errorf("public site served %d requests, want %d", n, wantPublic)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

package netns

import "testing"

// TestIPv6Embedded: public IPv6 works by name (AAAA) and literal, while
// internal addresses in every IPv6 form are denied by name and by literal:
// ULA, link-local, IPv4-mapped and NAT64 (64:ff9b::/96) embedding of an
// internal IPv4 address. No internal server sees a connection.
func TestIPv6Embedded(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]"}))
	const nat64 = "64:ff9b::a14:a" // 10.20.0.10
	cases := []curlCase{
		{"public AAAA name", args("-6", resolve("www6.example.com", "80", ip6Public), "http://www6.example.com/"), okPublic},
		{"public AAAA name over TLS", args("-6", resolve("www6.example.com", "443", ip6Public), "https://www6.example.com/"), okPublic},
		{"public dual-stack name over IPv6", args("-6", resolve("www.example.com", "443", ip6Public), "https://www.example.com/"), okPublic},
		{"public IPv6 literal", args("http://[" + ip6Public + "]/"), okPublic},
		{"ULA name", args(resolve("ula.example.com", "80", ip6BITool), "http://ula.example.com/"), deniedInt},
		{"ULA literal", args("http://[" + ip6BITool + "]/"), deniedInt},
		{"ULA literal over TLS", args("https://[" + ip6BITool + "]/"), tlsNoSNI},
		{"link-local name", args(resolve("ll.example.com", "80", ip6Public), "http://ll.example.com/"), deniedInt},
		// The scope id binds the socket to vint, like SO_BINDTODEVICE.
		{"link-local literal", args("--connect-timeout", "2", "http://["+ip6LLBI+"%25vint]/"), dropped},
		{"IPv4-mapped name", args(resolve("mapped.example.com", "80", ip6Public), "http://mapped.example.com/"), deniedInt},
		{"IPv4-mapped literal", args("http://[::ffff:" + ipBITool + "]/"), deniedInt},
		{"IPv4-mapped Host to a public IPv6", args("-H", "Host: [::ffff:"+ipBITool+"]", "http://["+ip6Public+"]/"), want{status: 403, body: "egressfw denied"}},
		{"NAT64 name", args(resolve("nat64.example.com", "80", ip6Public), "http://nat64.example.com/"), deniedInt},
		{"NAT64 literal", args("http://[" + nat64 + "]/"), deniedInt},
		{"internal name with AAAA over IPv6", args("-6", resolve("bi-tool.example.com", "80", ip6BITool), "http://bi-tool.example.com/"), deniedInt},
	}
	runCases(t, tp, []who{tp.inCgroup("a"), tp.asUID()}, cases)
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0: %+v", n, tp.internal.filter(func(e srvEvent) bool { return e.Ev == "conn" }))
	}
	tp.pub.atLeast(func() int { return tp.pub.requests("") }, 2*4)
	if n := tp.pub.requests(""); n != 2*4 {
		t.Errorf("public site served %d requests, want %d", n, 2*4)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

package netns

import "testing"

// TestMetadata: the cloud metadata address 169.254.169.254 is unreachable
// for tenants, by IP in any spelling, by a name resolving to it, and with a
// public name sent to it; the metadata server accepts no connection.
func TestMetadata(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]"}))
	anyDenial := want{status: 403, body: "egressfw denied this request"}
	cases := []curlCase{
		{"by IP", args("http://" + ipMetadata + "/latest/meta-data/"), deniedInt},
		{"by IP over TLS", args("https://" + ipMetadata + "/"), tlsNoSNI},
		{"by decimal IP", args("http://2852039166/latest/meta-data/"), deniedInt},
		{"by IPv4-mapped IPv6", args("http://[::ffff:" + ipMetadata + "]/"), deniedInt},
		{"by name", args(resolve("metadata.example.com", "80", ipMetadata), "http://metadata.example.com/"), deniedInt},
		{"by name over TLS", args(resolve("metadata.example.com", "443", ipMetadata), "https://metadata.example.com/"), tlsDenied},
		{"name sent to a public IP", args(resolve("metadata.example.com", "80", ipPublic), "http://metadata.example.com/"), deniedInt},
		{"IP as Host sent to a public IP", args("-H", "Host: "+ipMetadata, "http://"+ipPublic+"/"), anyDenial},
	}
	runCases(t, tp, []who{tp.inCgroup("a"), tp.asUID()}, cases)
	tp.settleServers() // a late event must not pass for none
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal namespace (metadata at %s) accepted %d connections, want 0", ipMetadata, n)
	}
	if n := tp.pub.conns(""); n != 0 {
		t.Errorf("public site accepted %d connections, want 0 (every case is a denial)", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

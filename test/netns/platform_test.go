package netns

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPublicLookingInternal: addresses in space that looks public but is
// not. The internal namespace answers at the Azure WireServer address
// 168.63.129.16 and, behind the site's own NAT64 prefix 2001:db8:64::/96
// (policy.nat64_prefixes), at 2001:db8:64::a14:a, the BI tool's
// 10.20.0.10: both routed from the host and reachable before egressfw knew
// them. Tenants are refused by IP and by name, the servers see nothing,
// and the log and explain name the reason (the embedded IPv4 address).
func TestPublicLookingInternal(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	tp.addInternalAddr(ipWireServer+"/32", ipWireServer+"/32")
	tp.addInternalAddr(ip6SiteNAT64+"/128", "2001:db8:64::/96")
	cfg := strings.Replace(tp.config(cfgOpts{interceptPorts: "[80, 443]"}), "[policy]\n",
		"[policy]\nnat64_prefixes = [\"2001:db8:64::/96\"]\n", 1)
	d := tp.startEgressfw(cfg)
	cases := []curlCase{
		{"WireServer by IP", args("http://" + ipWireServer + "/machine?comp=goalstate"), deniedInt},
		{"WireServer by IP over TLS", args("https://" + ipWireServer + "/"), tlsNoSNI},
		{"WireServer by name", args(resolve("wire.example.com", "80", ipWireServer), "http://wire.example.com/machine?comp=goalstate"), deniedInt},
		{"WireServer by name over TLS", args(resolve("wire.example.com", "443", ipWireServer), "https://wire.example.com/"), tlsDenied},
		{"WireServer by IPv4-mapped IPv6", args("http://[::ffff:" + ipWireServer + "]/"), deniedInt},
		{"site NAT64 literal", args("http://[" + ip6SiteNAT64 + "]/"), deniedInt},
		{"site NAT64 literal over TLS", args("https://[" + ip6SiteNAT64 + "]/"), tlsNoSNI},
		{"name resolving into the site NAT64 prefix", args("-6", resolve("site64.example.com", "80", ip6SiteNAT64), "http://site64.example.com/"), deniedInt},
		{"public name still allowed", args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/"), okPublic},
	}
	runCases(t, tp, []who{tp.inCgroup("a"), tp.asUID()}, cases)
	for _, ip := range []string{ipWireServer, ip6SiteNAT64} {
		if n := tp.internal.conns(ip); n != 0 {
			t.Errorf("the internal server at %s accepted %d connections, want 0", ip, n)
		}
	}
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0: %v", n, tp.internal.filter(func(e srvEvent) bool { return e.Ev == "conn" }))
	}
	for _, c := range []struct{ name, orig, detail string }{
		{"wire.example.com", ipWireServer + ":80", "168.63.129.16, which is Azure WireServer, a cloud platform endpoint"},
		{"site64.example.com", "[" + ip6SiteNAT64 + "]:80", "which embeds 10.20.0.10 (nat64_prefixes 2001:db8:64::/96), private-use"},
		{"", "[" + ip6SiteNAT64 + "]:80", "2001:db8:64::a14:a embeds 10.20.0.10"},
	} {
		l, ok := d.waitLog(func(l logLine) bool {
			return l.str("msg") == "connection" && l.str("orig_dst") == c.orig && strings.Contains(l.str("detail"), c.detail)
		}, 3*time.Second)
		if !ok || l.str("reason") != "internal_address" {
			t.Errorf("no internal_address log line for %s -> %s whose detail names %q (got %v)", c.name, c.orig, c.detail, l)
		}
	}
	// explain resolves with the same DNS and says why.
	for _, c := range []struct{ target, want string }{
		{"http://site64.example.com/", "embeds 10.20.0.10 (nat64_prefixes 2001:db8:64::/96)"},
		{"http://wire.example.com/", "Azure WireServer"},
	} {
		r := tp.run(nonTenant(), 10*time.Second, egressfwBin, "explain", "--config", d.cfgPath, "--tenant", "a", c.target)
		if r.code != 1 || !strings.Contains(r.out, "DENY") || !strings.Contains(r.out, c.want) {
			t.Errorf("explain %s: exit %d, want 1 and a reason naming %q:\n%s%s", c.target, r.code, c.want, r.out, r.errOut)
		}
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// addInternalAddr puts addr on the internal namespace's side of the link
// and routes route to it from the host (with a permanent neighbour, as
// link does), so the host reaches it like any address there.
func (tp *topo) addInternalAddr(addr, route string) {
	tp.t.Helper()
	tp.ip(tp.intern, "addr", "add", addr, "dev", "vhost", "nodad")
	fam := "-4"
	if strings.Contains(addr, ":") {
		fam = "-6"
	}
	tp.ip(tp.host, fam, "route", "add", route, "dev", "vint")
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(tp.ip(tp.intern, "-j", "link", "show", "vhost")), &links); err != nil || len(links) != 1 {
		tp.t.Fatalf("read MAC of the internal side: %v", err)
	}
	ip, _, _ := strings.Cut(addr, "/")
	tp.ip(tp.host, "neigh", "replace", ip, "lladdr", links[0].Address, "dev", "vint", "nud", "permanent")
}

package netns

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// Addresses of the topology. "Public" ones are documentation ranges that
// each config lists in policy.public_cidrs.
const (
	ipHostPub  = "198.51.100.1"  // host side of the public link
	ipPublic   = "198.51.100.10" // the public web site
	ip6HostPub = "2001:db8:1::1"
	ip6Public  = "2001:db8:1::10"
	ipHostInt  = "10.20.0.1"  // host side of the internal link
	ipBITool   = "10.20.0.10" // unauthenticated internal BI tool
	ipSvc      = "10.20.0.20" // the internal service one tenant may use
	ipDNS      = "10.20.0.53" // split-horizon DNS: the host's resolver
	ipMetadata = "169.254.169.254"
	ip6HostInt = "fd00:20::1"
	ip6BITool  = "fd00:20::10"
	ip6LLBI    = "fe80::20" // the BI tool's link-local address
	// Put on the internal namespace only by the tests that need them.
	ipWireServer = "168.63.129.16"      // Azure's platform endpoint, public space
	ip6SiteNAT64 = "2001:db8:64::a14:a" // 10.20.0.10 behind a site NAT64 prefix 2001:db8:64::/96
)

// zone is the split-horizon DNS the internal namespace serves.
var zone = map[string]map[string][]string{
	"www.example.com":      {"a": {ipPublic}, "aaaa": {ip6Public}, "https": {`1 . alpn="h3,h2" ipv4hint=` + ipBITool + ` ech="` + echConfig + `"`}},
	"www6.example.com":     {"aaaa": {ip6Public}},
	"bi-tool.example.com":  {"a": {ipBITool}, "aaaa": {ip6BITool}},
	"svc.example.com":      {"a": {ipSvc}},
	"metadata.example.com": {"a": {ipMetadata}},
	"ula.example.com":      {"aaaa": {ip6BITool}},
	"ll.example.com":       {"aaaa": {ip6LLBI}},
	"mapped.example.com":   {"aaaa": {"::ffff:" + ipBITool}},
	"nat64.example.com":    {"aaaa": {"64:ff9b::a14:a"}},
	"wire.example.com":     {"a": {ipWireServer}},
	"site64.example.com":   {"aaaa": {ip6SiteNAT64}},
	"many.example.com":     {"a": manyAddrs},
	"tracked.example.com":  {"cname": {"hop.example.net"}},
	"hop.example.net":      {"cname": {"t.blocked.example"}},
	"t.blocked.example":    {"a": {ipPublic}},
	// Public names for TestSuggest: an apex, subdomains, other domains.
	"example.com":      {"a": {ipPublic}},
	"api.example.com":  {"a": {ipPublic}},
	"cdn.example.com":  {"a": {ipPublic}},
	"solo.example.org": {"a": {ipPublic}},
	"new.example.net":  {"a": {ipPublic}},
	// TestPerRequest: a public name of its own, and a second name on the
	// internal service's ingress.
	"site1.example.test": {"a": {ipPublic}},
	"admin.example.com":  {"a": {ipSvc}},
}

// echConfig is an ECHConfigList (RFC 9460 ech=), as a CDN publishes it.
const echConfig = "AEn+DQBFKwAgACABWIHUGj4u+PIggYXcR5JF0gYk3dCRioBW8uJq9H4mKAAIAAEAAQABAANAEnB1YmxpYy50bHMtZWNoLmRldgAA"

// manyAddrs are 200 addresses of 203.0.113.0/24 that the public namespace
// answers for with a reset (a local route, no listener).
var manyAddrs = func() []string {
	var out []string
	for i := 1; i <= 200; i++ {
		out = append(out, fmt.Sprintf("203.0.113.%d", i))
	}
	return out
}()

// rebind answers alternately public and internal, TTL 0.
var rebind = map[string]map[string][]string{
	"rebind.example.com": {"a": {ipPublic, ipBITool}},
}

var labels = map[string]string{
	ipPublic: "public", ip6Public: "public", ipBITool: "bi-tool", ip6BITool: "bi-tool",
	ipSvc: "svc", ipMetadata: "metadata",
}

// topoSeq numbers this process's topologies; the uid tenant's uid is
// 61000 plus the number.
var topoSeq atomic.Int32

// topo is one test's world: three namespaces, their servers, the test CA
// and the tenant cgroups. It is torn down by t.Cleanup.
type topo struct {
	t                    testing.TB
	id                   string // prefix-pid-seq, unique per test
	host, public, intern string // namespace names
	dir                  string // world-readable temp dir: PKI, specs, configs
	cgRoot, slice        string // cgroup2 mount; our slice relative to it
	uid                  int    // the uid tenant's uid
	pub, internal, dns   *server
}

// newTopo builds the topology and starts its servers.
func newTopo(t testing.TB) *topo {
	t.Helper()
	needRoot(t)
	n := topoSeq.Add(1)
	tp := &topo{t: t, id: netnstest.UniqueName(prefix), uid: 61000 + int(n)}
	tp.host, tp.public, tp.intern = tp.id+"-host", tp.id+"-pub", tp.id+"-int"
	// Not t.TempDir: its parent is private, and uid tenants read the CA.
	tp.dir = filepath.Join(os.TempDir(), tp.id)
	if err := os.Mkdir(tp.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tp.dir) })
	if err := writePKI(tp.dir); err != nil {
		t.Fatalf("generate test PKI: %v", err)
	}
	for _, ns := range []string{tp.host, tp.public, tp.intern} {
		netnstest.New(t, ns)
	}
	tp.link(tp.public, "vpub", []string{ipHostPub + "/24", ip6HostPub + "/64"},
		[]string{ipPublic + "/24", ip6Public + "/64"})
	tp.link(tp.intern, "vint", []string{ipHostInt + "/24", ip6HostInt + "/64"},
		[]string{ipBITool + "/24", ipSvc + "/24", ipDNS + "/24", ipMetadata + "/32", ip6BITool + "/64", ip6LLBI + "/64"})
	tp.ip(tp.host, "route", "add", "default", "via", ipPublic)
	tp.ip(tp.host, "-6", "route", "add", "default", "via", ip6Public)
	tp.ip(tp.host, "route", "add", ipMetadata+"/32", "dev", "vint")
	tp.ip(tp.public, "route", "add", "default", "via", ipHostPub)
	tp.ip(tp.public, "-6", "route", "add", "default", "via", ip6HostPub)
	tp.ip(tp.intern, "route", "add", "default", "via", ipHostInt)
	tp.ip(tp.intern, "-6", "route", "add", "default", "via", ip6HostInt)
	tp.setupCgroups()
	tp.pub = tp.startServer("public", tp.public, map[string]any{
		"http": []string{":80"}, "https": []string{":443"}, "raw": []string{":8080"}})
	tp.internal = tp.startServer("internal", tp.intern, map[string]any{
		"http": []string{":80"}, "https": []string{":443"}, "raw": []string{":8080"}})
	tp.dns = tp.startServer("dns", tp.intern, map[string]any{"dns": []string{ipDNS + ":53"}})
	return tp
}

// link connects the host namespace to peer with a veth pair named dev on
// the host side and "vhost" on the peer side, and adds the addresses.
func (tp *topo) link(peer, dev string, hostAddrs, peerAddrs []string) {
	netnstest.Veth(tp.t, netnstest.End{NS: tp.host, Dev: dev, Addrs: hostAddrs}, netnstest.End{NS: peer, Dev: "vhost", Addrs: peerAddrs})
	// Permanent neighbours: a first SYN lost to neighbour discovery would
	// cost a test a one-second retransmission.
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(tp.ip(peer, "-j", "link", "show", "vhost")), &links); err != nil || len(links) != 1 {
		tp.t.Fatalf("read MAC of the %s side: %v", peer, err)
	}
	for _, a := range peerAddrs {
		ip, _, _ := strings.Cut(a, "/")
		tp.ip(tp.host, "neigh", "replace", ip, "lladdr", links[0].Address, "dev", dev, "nud", "permanent")
	}
}

// ip runs the ip CLI in namespace ns.
func (tp *topo) ip(ns string, args ...string) string {
	tp.t.Helper()
	return netnstest.Run(tp.t, "ip", append([]string{"-n", ns}, args...)...)
}

// nsCmd is a command run in namespace ns (a name or a path) with nsenter:
// netnstest.Cmd, by the name the suite's tests use.
var nsCmd = netnstest.Cmd

// startServer runs testsrv serve in ns with the spec plus the topology's
// certificate, labels and zone, and waits for it to listen.
func (tp *topo) startServer(name, ns string, spec map[string]any) *server {
	tp.t.Helper()
	spec["cert"], spec["key"] = filepath.Join(tp.dir, "cert.pem"), filepath.Join(tp.dir, "key.pem")
	spec["labels"], spec["zone"], spec["rotate"] = labels, zone, rebind
	b, _ := json.Marshal(spec)
	path := filepath.Join(tp.dir, "spec-"+name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tp.t.Fatal(err)
	}
	s, err := startServer(name, nsCmd(ns, testsrvBin, "serve", "-spec", path))
	if err != nil {
		tp.t.Fatalf("start %s server: %v", name, err)
	}
	tp.t.Cleanup(s.stop)
	return s
}

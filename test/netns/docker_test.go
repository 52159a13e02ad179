package netns

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/dockertest"
	"github.com/egressfw/egressfw/internal/netnstest"
)

// dockerd is a real Docker daemon (Debian's docker.io) in the topology's
// host namespace (see internal/dockertest).
type dockerd struct {
	*dockertest.Dockerd
	tp *topo
}

const dockerImage = dockertest.Image

func (tp *topo) startDockerd() *dockerd {
	tp.t.Helper()
	return &dockerd{Dockerd: dockertest.Start(tp.t, tp.host, tp.id), tp: tp}
}

// container starts a detached container and returns it as a client: host
// tools (curl, python3) run in its network namespace with nsenter.
func (dk *dockerd) container(name string, args ...string) who {
	dk.tp.t.Helper()
	dk.Docker(append(append([]string{"run", "-d", "--name", name}, args...), dockerImage, "sleep", "600")...)
	pid := dk.Docker("inspect", "-f", "{{.State.Pid}}", name)
	return who{label: name, netns: "/proc/" + pid + "/ns/net"}
}

// counters are the packet and byte counts of iptables-nft rules, which
// traffic changes; the rules themselves must not.
var counters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// dockerTables lists Docker's own tables (iptables-nft) in the host
// namespace, counters blanked.
func (tp *topo) dockerTables() string {
	tp.t.Helper()
	out := tp.nft("list", "table", "ip", "nat") + tp.nft("list", "table", "ip", "filter")
	return counters.ReplaceAllString(out, "counter")
}

func containersTenant() string {
	return fmt.Sprintf(`[[tenant]]
name = "containers"
interfaces = ["docker0", "br-*"]
source_cidrs = ["172.16.0.0/12"]
  [[tenant.allow_direct]]
  cidr = "%s/32"
  ports = [53]
`, ipDNS)
}

// TestDocker runs a real dockerd in the host namespace and egressfw next to
// it. Containers reach the public site by name over HTTP and HTTPS through
// the listener and nothing internal: the split-horizon service, metadata,
// the host's addresses and the bridge gateway are refused; a spoofed
// source is dropped; UDP (QUIC) does not leave. Docker's tables are
// byte-for-byte unchanged across egressfw's start, reload and stop; a
// published port still answers; a network created later and a restarted
// dockerd are still covered.
func TestDocker(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	dk := tp.startDockerd()
	dk.BuildImage()
	c1 := dk.container("c1")
	dk.Docker("run", "-d", "--name", "web", "-p", "8081:80", dockerImage, "httpd", "-f", "-p", "80", "-h", "/")
	before := tp.dockerTables()
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.defaultTenants() + containersTenant()}))
	compare := func(when, want string) {
		t.Helper()
		if got := tp.dockerTables(); got != want {
			t.Errorf("Docker's tables changed %s:\nbefore:\n%s\nafter:\n%s", when, want, got)
		}
	}
	compare("when egressfw started", before)

	cases := []curlCase{
		{"public by name", args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/"), okPublic},
		{"public by name over TLS", args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/"), okPublic},
		{"split-horizon name", args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/"), deniedInt},
		{"split-horizon name over TLS", args(resolve("bi-tool.example.com", "443", ipBITool), "https://bi-tool.example.com/"), tlsDenied},
		{"metadata", args("http://" + ipMetadata + "/latest/meta-data/"), deniedInt},
		{"host's public address", args("http://" + ipHostPub + "/"), deniedInt},
		{"host's internal address", args("http://" + ipHostInt + "/"), deniedInt},
		{"bridge gateway", args("http://172.17.0.1/"), deniedInt},
		{"published port via the host", args("http://" + ipHostPub + ":8081/"), reset},
		{"other TCP port", args("http://" + ipPublic + ":8080/"), reset},
	}
	runCases(t, tp, []who{c1}, cases)
	t.Run("spoofed source", func(t *testing.T) {
		netnstest.Output(t, nsCmd(c1.netns, "ip", "addr", "add", ipSpoof+"/32", "dev", "eth0"))
		r := tp.curl(c1, "--interface", ipSpoof, "-m", "2", "http://"+ipPublic+":8080/")
		check(t, "spoofed", r, want{exit: 28, stderr: "connection timed out"})
	})
	t.Run("udp", func(t *testing.T) {
		if udpReaches(t, tp, c1, ipPublic, 443) {
			t.Error("UDP 443 (QUIC) from a container reached the public site")
		}
	})
	t.Run("container to container", func(t *testing.T) {
		ip := dk.Docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web")
		if r := tp.curl(c1, "http://"+ip+"/"); r.status == 0 {
			t.Errorf("container to container on port 80: %v; want the other container's HTTP answer", r)
		}
	})
	t.Run("published port answers", func(t *testing.T) {
		r := tp.curl(who{label: "outside", netns: tp.public}, "http://"+ipHostPub+":8081/")
		if r.status == 0 {
			t.Errorf("published port: %v; want an HTTP answer from the container", r)
		}
	})
	i := d.since()
	d.signal(syscall.SIGHUP)
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "config reloaded" }, 5*time.Second); !ok {
		t.Fatalf("no reload logged:\n%s", d.logText())
	}
	compare("on reload", before)

	covered := []curlCase{cases[0], cases[4]}
	t.Run("network created later", func(t *testing.T) {
		dk.Docker("network", "create", "--subnet", "172.30.0.0/24", "egfwnet")
		c2 := dk.container("c2", "--network", "egfwnet")
		runCases(t, tp, []who{c2}, append(covered, curlCase{"its gateway", args("http://172.30.0.1/"), deniedInt}))
	})
	t.Run("dockerd restarted", func(t *testing.T) {
		dk.Stop()
		dk.Up()
		c3 := dk.container("c3")
		runCases(t, tp, []who{c3}, covered)
	})
	tp.internal.settle() // a late event must not pass for none
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal namespace accepted %d connections, want 0", n)
	}
	if n := tp.internal.requests(""); n != 0 {
		t.Errorf("internal servers served %d requests, want 0", n)
	}
	l, ok := d.waitLog(func(l logLine) bool {
		return l.str("tenant") == "containers" && l.str("iif") == "docker0" && strings.HasPrefix(l.str("src"), "172.17.") &&
			l.str("decision") == "allow"
	}, 3*time.Second)
	if !ok {
		t.Errorf("no allowed container connection logged with tenant, source and iif")
	} else {
		t.Logf("log line: src=%s iif=%s orig_dst=%s", l.str("src"), l.str("iif"), l.str("orig_dst"))
	}
	stopBefore := tp.dockerTables()
	d.stop()
	compare("when egressfw stopped", stopBefore)
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

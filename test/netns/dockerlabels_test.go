package netns

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// Docker-label tenants end to end: a real dockerd in the host namespace,
// egressfw following it through its Engine API (relayed by the test, so
// the test can make it unreachable), the interface tenant "containers" on
// every Docker bridge, and the labelled tenant "trusted", which may reach
// the internal service svc.example.com on port 80 and nothing else.

const trustedLabel = "egressfw.tenant=trusted"

// labelTenants is the config's tenants and [docker] section for engine
// socket sock: the interface tenant ifaces (containersTenant for Docker's
// bridges; it may not reach svc), "trusted" (label
// egressfw.tenant=trusted, may reach svc) and "team" (label team=a, for a
// container two tenants match).
func labelTenants(sock, ifaces string) string {
	return ifaces + `
[[tenant]]
name = "trusted"
docker_labels = { "egressfw.tenant" = "trusted" }
allow_domains = ["www.example.com"]
  [[tenant.allow_internal]]
  host = "svc.example.com"
  ports = [80]

[[tenant]]
name = "team"
docker_labels = { "team" = "a" }

[docker]
socket = "` + sock + `"
`
}

var (
	svcByName   = args(resolve("svc.example.com", "80", ipSvc), "-m", "3", "http://svc.example.com/")
	publicHTTP  = args(resolve("www.example.com", "80", ipPublic), "-m", "3", "http://www.example.com/")
	okSvc       = want{status: 200, body: "hello from svc"}
	svcFollowed = time.Second // a labelled container started later gets its tenant within this
)

// labelWorld is a dockerd, the relay egressfw reads it through, and
// egressfw with labelTenants.
type labelWorld struct {
	tp    *topo
	dk    *dockerd
	relay *sockRelay
	d     *daemon
	env   []string // added to egressfw's environment
	more  string   // more [[tenant]] tables for the config
}

// newLabelWorld starts dockerd and the relay, calls before (containers
// that run before egressfw; it may set env and more), then starts egressfw.
func newLabelWorld(t *testing.T, before func(w *labelWorld)) *labelWorld {
	tp := newTopo(t)
	w := &labelWorld{tp: tp, dk: tp.startDockerd()}
	w.dk.BuildImage()
	w.relay = relaySocket(t, tp.file("engine.sock"), w.dk.Sock)
	if before != nil {
		before(w)
	}
	cfg := tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: labelTenants(w.relay.path, containersTenant()+w.more)})
	w.d = &daemon{t: t, tp: tp, cfgPath: tp.writeConfig("egressfw.toml", cfg), env: w.env}
	w.d.start()
	t.Cleanup(w.d.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("egressfw log:\n%s", w.d.logText())
		}
	})
	return w
}

// run starts a detached container with a label (none if "") and returns
// it as a client.
func (w *labelWorld) run(name, label string, extra ...string) who {
	w.tp.t.Helper()
	var a []string
	if label != "" {
		a = append(a, "--label", label)
	}
	return w.dk.container(name, append(a, extra...)...)
}

// inspect reads one field of a container (a Go template).
func (w *labelWorld) inspect(name, tmpl string) string {
	w.tp.t.Helper()
	return w.dk.Docker("inspect", "-f", tmpl, name)
}

func (w *labelWorld) ip(name string) string {
	return w.inspect(name, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
}

// untilSvc polls svc from c until it answers as want says (ok: 200, else
// the interface tenant's 403) and returns how long that took, or fails
// after within.
func (w *labelWorld) untilSvc(t *testing.T, c who, ok bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var r curlRes
	for time.Since(start) < within {
		r = w.tp.curl(c, svcByName...)
		if ok && r.status == 200 || !ok && r.status == 403 {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: svc still answers %v after %v", c.label, r, within)
	return 0
}

// svcLogged waits for the log line of c's request to svc from log index
// i and checks its tenant and container fields.
func (w *labelWorld) svcLogged(t *testing.T, i int, c who, tenant, container string) {
	t.Helper()
	src := w.ip(c.label)
	l, ok := w.d.waitLogFrom(i, func(l logLine) bool {
		return l.str("msg") == "connection" && l.str("name") == "svc.example.com" && strings.HasPrefix(l.str("src"), src+":")
	}, 3*time.Second)
	switch {
	case !ok:
		t.Errorf("no log line of %s's request to svc", c.label)
	case l.str("tenant") != tenant || l.str("container") != container:
		t.Errorf("%s's request logged as tenant %q, container %q; want %q, %q", c.label, l.str("tenant"), l.str("container"), tenant, container)
	case container != "" && l.str("container_id") != w.inspect(c.label, "{{.Id}}")[:12]:
		t.Errorf("%s's request logged with container_id %q", c.label, l.str("container_id"))
	}
}

// impersonate gives spoofer (a container on docker0 with NET_ADMIN)
// the address of container victim, and points the host's neighbour entry
// for it at the spoofer, as ARP spoofing would; it returns the address.
// The spoofer's own traffic is the interface tenant's. Its neighbour
// table gets the gateway's MAC (busybox ip cannot set it, the host's ip
// can, as the container's NET_ADMIN could), so its spoofed packets are
// sent: an ARP request from the victim's address would be dropped first.
func (w *labelWorld) impersonate(spoofer who, victim string) string {
	t, tp := w.tp.t, w.tp
	t.Helper()
	addr, mac := w.ip(victim), w.inspect(spoofer.label, "{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}")
	_, gwMAC, _ := strings.Cut(netnstest.Output(t, nsCmd(tp.host, "ip", "-o", "link", "show", "docker0")), "link/ether ")
	gwMAC, _, _ = strings.Cut(gwMAC, " ")
	netnstest.Output(t, nsCmd(spoofer.netns, "ip", "neigh", "replace", "172.17.0.1", "lladdr", gwMAC, "dev", "eth0", "nud", "permanent"))
	w.dk.Docker("exec", spoofer.label, "busybox", "ip", "addr", "add", addr+"/32", "dev", "eth0")
	netnstest.Output(t, nsCmd(tp.host, "ip", "neigh", "replace", addr, "lladdr", mac, "dev", "docker0", "nud", "permanent"))
	return addr
}

// unimpersonate gives the host's neighbour entry for addr back to the
// kernel.
func (w *labelWorld) unimpersonate(addr string) {
	netnstest.Output(w.tp.t, nsCmd(w.tp.host, "ip", "neigh", "del", addr, "dev", "docker0"))
}

// TestDockerLabels: a labelled container reaches its tenant's internal
// service while an unlabelled one on the same bridge gets the interface
// tenant; the log line names the container. A labelled container started
// after egressfw gets its tenant within a second. An unlabelled container
// that takes the labelled one's address, with the host's neighbour entry
// pointing at it as ARP spoofing would make it, reaches nothing. A removed
// labelled container's address, reused by an unlabelled one, carries the
// interface tenant from the first packet. A container two tenants match
// gets neither, logged. Docker's own tables are unchanged.
func TestDockerLabels(t *testing.T) {
	t.Parallel()
	var before string
	var relay, plain who
	w := newLabelWorld(t, func(w *labelWorld) {
		relay, plain = w.run("relay", trustedLabel), w.run("plain", "")
		before = w.tp.dockerTables()
	})
	tp, dk, d := w.tp, w.dk, w.d
	if got := tp.dockerTables(); got != before {
		t.Errorf("Docker's tables changed when egressfw started:\nbefore:\n%s\nafter:\n%s", before, got)
	}

	t.Run("labelled and unlabelled on one bridge", func(t *testing.T) {
		i := d.since()
		check(t, "relay: svc", tp.curl(relay, svcByName...), okSvc)
		w.svcLogged(t, i, relay, "trusted", "relay")
		i = d.since()
		check(t, "plain: svc", tp.curl(plain, svcByName...), deniedInt)
		w.svcLogged(t, i, plain, "containers", "plain")
		check(t, "relay: public", tp.curl(relay, publicHTTP...), okPublic)
		check(t, "plain: public", tp.curl(plain, publicHTTP...), okPublic)
		check(t, "relay: a name not on its list", tp.curl(relay, args(resolve("api.example.com", "80", ipPublic), "http://api.example.com/")...),
			want{status: 403, body: "not on the allow list"})
	})

	t.Run("labelled after egressfw started", func(t *testing.T) {
		start := time.Now()
		late := w.run("late", trustedLabel)
		ran := time.Since(start)
		took := w.untilSvc(t, late, true, 5*time.Second)
		t.Logf("docker run took %v; its requests got the labelled tenant %v after it returned", ran.Round(time.Millisecond), took.Round(time.Millisecond))
		if took > svcFollowed {
			t.Errorf("late container got its tenant %v after docker run returned, want within %v", took, svcFollowed)
		}
	})

	t.Run("spoofed address and neighbour entry", func(t *testing.T) {
		spoofer := w.run("spoofer", "", "--cap-add", "NET_ADMIN")
		check(t, "spoofer, own address: svc", tp.curl(spoofer, svcByName...), deniedInt)
		victim := w.impersonate(spoofer, "relay")
		tp.settleServers()
		svcServed, pubServed, i := tp.internal.requests(ipSvc), tp.pub.requests(""), d.since()
		for _, c := range []struct {
			name string
			args []string
		}{{"svc", svcByName}, {"public", publicHTTP}} {
			r := tp.curl(spoofer, append([]string{"--interface", victim}, c.args...)...)
			check(t, "spoofer as relay: "+c.name, r, want{exit: 28, stderr: "timed out"})
		}
		tp.settleServers() // a late event must not pass for none
		if n := tp.internal.requests(ipSvc) - svcServed; n != 0 {
			t.Errorf("svc served %d requests to the spoofer", n)
		}
		if n := tp.pub.requests("") - pubServed; n != 0 {
			t.Errorf("the public site served %d requests to the spoofer", n)
		}
		if ls := d.linesFrom(i, func(l logLine) bool { return strings.HasPrefix(l.str("src"), victim+":") }); len(ls) != 0 {
			t.Errorf("egressfw saw connections from the spoofed address: %v", ls)
		}
		w.unimpersonate(victim)
		check(t, "relay, after the spoof: svc", tp.curl(relay, svcByName...), okSvc)
	})

	t.Run("removed labelled container's address reused", func(t *testing.T) {
		dk.Docker("network", "create", "--subnet", "172.30.0.0/24", "lnet")
		old := w.run("old", trustedLabel, "--network", "lnet", "--ip", "172.30.0.10")
		w.untilSvc(t, old, true, 5*time.Second)
		dk.Docker("rm", "-f", "old")
		reused := w.run("reused", "", "--network", "lnet", "--ip", "172.30.0.10")
		i := d.since()
		for range 10 {
			r := tp.curl(reused, svcByName...)
			check(t, "reused: svc", r, deniedInt)
			if r.status == 200 {
				break
			}
		}
		w.svcLogged(t, i, reused, "containers", "reused")
		check(t, "reused: public", tp.curl(reused, publicHTTP...), okPublic)
	})

	t.Run("two tenants match", func(t *testing.T) {
		i := d.since()
		greedy := w.run("greedy", trustedLabel, "--label", "team=a")
		id := w.inspect("greedy", "{{.Id}}")[:12]
		l, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("container_id") == id && l.str("level") == "WARN" }, 5*time.Second)
		if !ok || l.str("container") != "greedy" || !strings.Contains(fmt.Sprint(l["tenants"]), "trusted") || !strings.Contains(fmt.Sprint(l["tenants"]), "team") {
			t.Errorf("no warning naming greedy, its id and both tenants: %v", l)
		}
		i = d.since()
		check(t, "greedy: svc", tp.curl(greedy, svcByName...), deniedInt)
		w.svcLogged(t, i, greedy, "containers", "greedy")
	})

	tp.internal.atLeast(func() int { return tp.internal.requests(ipSvc) }, 1)
	if n := tp.internal.requests(ipSvc); n == 0 {
		t.Error("svc served nothing: the labelled containers never reached it")
	}
	stop := tp.dockerTables()
	d.stop()
	if got := tp.dockerTables(); got != stop {
		t.Errorf("Docker's tables changed when egressfw stopped:\nbefore:\n%s\nafter:\n%s", stop, got)
	}
}

package netns

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// squatScript binds every port given on 0.0.0.0 and :: (plain sockets, as
// any local user may open) and prints a line per connection it accepts.
const squatScript = `import socket,select,sys
ls=[]
for p in map(int,sys.argv[1:]):
    for fam,a in ((socket.AF_INET,'0.0.0.0'),(socket.AF_INET6,'::')):
        s=socket.socket(fam,socket.SOCK_STREAM)
        if fam==socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)
        s.bind((a,p)); s.listen(16); ls.append(s)
print('ready',flush=True)
while True:
    r,_,_=select.select(ls,[],[])
    for s in r:
        c,peer=s.accept(); print('accepted',s.getsockname()[1],peer[0],flush=True); c.close()
`

// squatter is a local user's process holding egressfw's listener ports.
type squatter struct {
	cmd      *exec.Cmd
	mu       sync.Mutex
	accepted []string
}

// squat starts squatScript as nobody (uid 65534) in the host namespace on
// ports; it is killed at cleanup.
func (tp *topo) squat(ports []string) *squatter {
	tp.t.Helper()
	argv := append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/python3", "-u", "-c", squatScript}, ports...)
	s := &squatter{cmd: nsCmd(tp.host, argv...)}
	tp.startReady(fmt.Sprintf("squatter on %v", ports), s.cmd, func(l string) {
		s.mu.Lock()
		s.accepted = append(s.accepted, l)
		s.mu.Unlock()
	})
	return s
}

// stop ends the squatter (waiting for it, so its ports are free).
func (s *squatter) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

func (s *squatter) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.accepted...)
}

var elementsRe = regexp.MustCompile(`elements = \{ ([0-9, ]+) \}`)

// listenerPorts reads the listener ports from egressfw's ruleset.
func (tp *topo) listenerPorts() []string {
	tp.t.Helper()
	m := elementsRe.FindStringSubmatch(tp.nft("list", "set", "inet", "egressfw", "listener_ports"))
	if m == nil {
		tp.t.Fatal("no listener ports in the ruleset")
	}
	return strings.Split(m[1], ", ")
}

// TestListenerSquatter: with egressfw killed, a local user (nobody) binds
// every listener port on 0.0.0.0 and :: . A VM behind a bridge (REDIRECT,
// with br_netfilter on as Docker leaves it) and local cgroup and uid
// tenants (TPROXY) connect to the public site over IPv4 and IPv6: each
// gets a reset within a second, the squatter accepts nothing, the public
// site sees nothing. egressfw, restarted while the squatter holds the
// ports, refuses to start with an error naming the port and the holder;
// once the port is free it starts and serves the VM again.
func TestListenerSquatter(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	vm := tp.guest("vm", vmBridge, ipVirbr, ipVM)
	tp.ip(tp.host, "-6", "addr", "add", "fd00:122::1/64", "dev", vmBridge, "nodad")
	tp.ip(vm.netns, "-6", "addr", "add", ip6VM1+"/64", "dev", "eth0", "nodad")
	tp.ip(vm.netns, "-6", "route", "add", "default", "via", "fd00:122::1")
	netnstest.Output(t, nsCmd(tp.host, "sysctl", "-qw", "net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1", "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"))
	vms := `[[tenant]]
name = "vms"
interfaces = ["virbr*"]
source_cidrs = ["192.168.122.0/24", "fd00:122::/64"]
`
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.defaultTenants() + vms}))
	http4 := args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/")
	http6 := args("-6", resolve("www.example.com", "80", ip6Public), "http://www.example.com/")
	clients := []who{vm, tp.inCgroup("a"), tp.asUID()}
	for _, w := range clients {
		check(t, w.label+" before the kill", tp.curl(w, http4...), okPublic)
	}
	ports := tp.listenerPorts()
	// The server's events arrive over a pipe: count the clients' connections
	// before taking the baseline, or a late one is blamed on the dead egressfw.
	tp.pub.atLeast(func() int { return tp.pub.conns("") }, len(clients))
	pub0 := tp.pub.conns("")

	d.signal(syscall.SIGKILL)
	if _, ok := d.wait(5 * time.Second); !ok {
		t.Fatal("egressfw did not die")
	}
	sq := tp.squat(ports)
	for _, w := range clients {
		for _, c := range []curlCase{{"IPv4", http4, reset}, {"IPv6", http6, reset}} {
			r := tp.curl(w, append([]string{"-m", "3"}, c.args...)...)
			check(t, fmt.Sprintf("%s %s with a squatter on the listener ports", w.label, c.name), r, c.want)
			if r.dur > time.Second {
				t.Errorf("%s %s took %v; want a reset within 1s", w.label, c.name, r.dur.Round(time.Millisecond))
			}
		}
	}
	if got := sq.got(); len(got) != 0 {
		t.Errorf("the squatter on %v accepted %d connections: %v; want none", ports, len(got), got)
	}
	if n := tp.pub.conns(""); n != pub0 {
		t.Errorf("public site accepted %d connections with egressfw dead, want 0", n-pub0)
	}

	t.Run("restart with the ports held fails and says why", func(t *testing.T) {
		i := d.launch()
		if _, ok := d.wait(10 * time.Second); !ok {
			t.Fatalf("egressfw kept running with its listener ports held:\n%s", d.logText())
		}
		l, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "egressfw failed" }, time.Second)
		msg := l.str("err")
		if !ok || !regexp.MustCompile(`port (\d+) is held by another process \(uid 65534 listening on (0\.0\.0\.0|\[::\]):(\d+)`).MatchString(msg) ||
			!strings.Contains(msg, "listener.port") {
			t.Errorf("failure logged: %q; want it to name the port, the other process (uid 65534) and what to do", msg)
		}
		t.Logf("logged: %s", msg)
	})
	sq.stop()
	d.start()
	check(t, "VM after the squatter left and egressfw restarted", tp.curl(vm, http4...), okPublic)
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

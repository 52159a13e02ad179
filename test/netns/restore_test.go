package netns

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// debianNftablesConf is Debian 12's stock /etc/nftables.conf, which
// `systemctl start|reload|restart nftables` loads with nft -f.
const debianNftablesConf = `#!/usr/sbin/nft -f

flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter;
	}
	chain forward {
		type filter hook forward priority filter;
	}
	chain output {
		type filter hook output priority filter;
	}
}
`

const restoredMsg = "nftables ruleset changed by another program; restored"

// restoreWorld is a topology with local tenant "a", the VM and pod of
// TestForwardedVMAndPod (br_netfilter on) and a raw TCP server on the
// host's own addresses, port 8080, with egressfw running.
type restoreWorld struct {
	tp         *topo
	d          *daemon
	a, vm, pod who
	hostServer *server
}

func newRestoreWorld(t *testing.T) *restoreWorld {
	tp := newTopo(t)
	w := &restoreWorld{tp: tp, a: tp.inCgroup("a")}
	w.vm = tp.guest("vm", vmBridge, ipVirbr, ipVM)
	w.pod = tp.guest("pod", "cni0", ipCNI, ipPod)
	netnstest.Output(t, nsCmd(tp.host, "sysctl", "-qw", "net.ipv4.ip_forward=1",
		"net.bridge.bridge-nf-call-iptables=1"))
	w.hostServer = tp.startServer("host", tp.host, map[string]any{"raw": []string{":8080"}})
	w.d = tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tp.defaultTenants() + forwardedTenants()}))
	return w
}

// waitRestored waits for egressfw's restore line after log index i.
func waitRestored(t *testing.T, d *daemon, i int) (logLine, bool) {
	t.Helper()
	return d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == restoredMsg }, 5*time.Second)
}

// TestRulesetRestored: Debian's nftables.conf loaded over egressfw's table
// (what `systemctl reload nftables` does) removes it; egressfw puts it back
// at once, says so in one WARN line naming nft, counts it, and the local
// and forwarded tenants are refused the internal server as before. A
// deleted fwmark ip rule fails closed until egressfw puts it back.
func TestRulesetRestored(t *testing.T) {
	t.Parallel()
	w := newRestoreWorld(t)
	tp, d, a, vm := w.tp, w.d, w.a, w.vm
	check(t, "before", tp.curl(a, "http://"+ipBITool+"/"), deniedInt)

	i := d.since()
	load := nsCmd(tp.host, "nft", "-f", "-")
	load.Stdin = strings.NewReader(debianNftablesConf)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f nftables.conf: %v: %s", err, out)
	}
	l, ok := waitRestored(t, d, i)
	if !ok {
		t.Fatalf("no %q line within 5s of nft -f:\n%s", restoredMsg, d.logText())
	}
	if l.str("level") != "WARN" || !strings.Contains(l.str("changes"), "delete table (egressfw)") ||
		!regexp.MustCompile(`^nft\[\d+\]$`).MatchString(l.str("by")) {
		t.Errorf("restore line %v: want level WARN, changes naming the deleted table, by nft[PID]", l)
	}
	if n := len(d.linesFrom(i, func(l logLine) bool { return l.str("msg") == restoredMsg })); n != 1 {
		t.Errorf("%d restore lines for one nft -f, want 1", n)
	}
	int0 := tp.internal.conns("")
	check(t, "local tenant after", tp.curl(a, "http://"+ipBITool+"/"), deniedInt)
	check(t, "VM after", tp.curl(vm, "http://"+ipBITool+"/"), deniedInt)
	check(t, "VM to another port after", tp.curl(vm, "http://"+ipBITool+":8080/"), reset)
	if n := tp.internal.conns(""); n != int0 {
		t.Errorf("internal server accepted %d connections after the restore, want none", n-int0)
	}
	if got := tp.curl(nonTenant(), "http://127.0.0.1:9464/metrics"); !strings.Contains(got.body, `egressfw_ruleset_restored_total{result="ok"} 1`) {
		t.Errorf("metrics lack egressfw_ruleset_restored_total{result=\"ok\"} 1:\n%.2000s", got.body)
	}

	// The policy routing: without the fwmark rule an intercepted SYN is
	// routed like any other, and the postrouting rule drops it (fail
	// closed, by timeout); egressfw puts the rule back.
	d.signal(syscall.SIGSTOP)
	t.Cleanup(func() { d.cmd.Process.Signal(syscall.SIGCONT) })
	tp.ip(tp.host, "-4", "rule", "del", "pref", "1515")
	int0 = tp.internal.conns("")
	check(t, "local tenant without the ip rule", tp.curl(a, "-m", "2", "http://"+ipBITool+"/"), want{exit: 28, stderr: "timed out"})
	if n := tp.internal.conns(""); n != int0 {
		t.Errorf("internal server accepted %d connections without the ip rule, want none", n-int0)
	}
	i = d.since()
	d.signal(syscall.SIGCONT)
	if _, ok := d.waitLogFrom(i, func(l logLine) bool {
		return l.str("msg") == restoredMsg && strings.Contains(l.str("changes"), "removed routing: IPv4 rule")
	}, 5*time.Second); !ok {
		t.Errorf("no restore of the ip rule within 5s")
	}
	check(t, "local tenant after the ip rule is back", tp.curl(a, "http://"+ipBITool+"/"), deniedInt)
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// held is a testsrv hold client: a connection opened at one moment and
// used at another.
type held struct {
	label string
	in    io.WriteCloser
	out   *bufio.Scanner
	cmd   *exec.Cmd
	done  func()
}

func (tp *topo) hold(w who, label, addr, send string) *held {
	tp.t.Helper()
	cmd, closeFD := tp.command(w, testsrvBin, "hold", "-addr", addr, "-send", send)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	h := &held{label: label, in: in, out: bufio.NewScanner(out), cmd: cmd, done: closeFD}
	tp.t.Cleanup(h.close)
	var first struct {
		Connected bool   `json:"connected"`
		Err       string `json:"err"`
	}
	if !h.out.Scan() || json.Unmarshal(h.out.Bytes(), &first) != nil || !first.Connected {
		tp.t.Fatalf("%s: no connection to %s while the table was missing: %s", label, addr, first.Err)
	}
	return h
}

// use sends the request and returns the reply and error the client saw.
func (h *held) use() (reply, errText string) {
	fmt.Fprintln(h.in, "go")
	var res struct {
		Reply string `json:"reply"`
		Err   string `json:"err"`
	}
	if h.out.Scan() {
		json.Unmarshal(h.out.Bytes(), &res)
	}
	return res.Reply, res.Err
}

func (h *held) close() {
	if h.cmd == nil {
		return
	}
	h.in.Close()
	h.cmd.Process.Kill()
	h.cmd.Wait()
	h.done()
	h.cmd = nil
}

// TestGapConnectionsCarryNothing: connections that tenants opened while
// egressfw's table was missing (egressfw stopped with SIGSTOP, the table
// deleted, the connections opened, then egressfw resumed and restored the
// table) carry no further byte to the internal servers: local and forwarded
// tenants, to an intercepted port (80) and to another port (8080), and a VM
// to the host's own address. An inbound connection to the VM from the gap
// (a published port) keeps working.
func TestGapConnectionsCarryNothing(t *testing.T) {
	t.Parallel()
	w := newRestoreWorld(t)
	tp, d := w.tp, w.d
	// Docker's FORWARD rule: conntrack keeps tracking through the gap, as
	// on any host with Docker, libvirt or kube-proxy. Without a ct user
	// the netns tracks nothing while egressfw's table is gone, and a flow
	// from the gap is picked up as new when the table is back.
	load := nsCmd(tp.host, "nft", "-f", "-")
	load.Stdin = strings.NewReader("table ip filter {\n\tchain FORWARD { type filter hook forward priority filter; policy accept; ct state related,established counter accept; }\n}\n")
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	d.signal(syscall.SIGSTOP)
	t.Cleanup(func() { d.cmd.Process.Signal(syscall.SIGCONT) })
	if out, err := nsCmd(tp.host, "nft", "delete", "table", "inet", "egressfw").CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v: %s", err, out)
	}
	get := `GET /gap HTTP/1.1\r\nHost: bi-tool.example.com\r\nConnection: close\r\n\r\n`
	raw := `POST /halfclose?first=client&up=0&down=5 HTTP/1.1\r\nHost: x\r\n\r\n`
	type conn struct {
		h          *held
		serverSees func() int
	}
	gapGets := func(ip string) func() int {
		return func() int {
			return tp.internal.count(func(e srvEvent) bool { return e.Ev == "http" && e.URI == "/gap" && e.localIP() == ip })
		}
	}
	rawHeads := func(s *server, ip string) func() int {
		return func() int {
			return s.count(func(e srvEvent) bool { return e.Ev == "raw" && e.First == "client" && e.localIP() == ip })
		}
	}
	var conns []conn
	for _, c := range []struct {
		w          who
		dst, send  string
		serverSees func() int
	}{
		{w.a, net.JoinHostPort(ipBITool, "80"), get, gapGets(ipBITool)},
		{w.a, net.JoinHostPort(ipBITool, "8080"), raw, rawHeads(tp.internal, ipBITool)},
		{w.vm, net.JoinHostPort(ipBITool, "80"), get, gapGets(ipBITool)},
		{w.vm, net.JoinHostPort(ipBITool, "8080"), raw, rawHeads(tp.internal, ipBITool)},
		{w.pod, net.JoinHostPort(ipBITool, "8080"), raw, rawHeads(tp.internal, ipBITool)},
		{w.vm, net.JoinHostPort(ipVirbr, "8080"), raw, rawHeads(w.hostServer, ipVirbr)},
	} {
		label := c.w.label + " to " + c.dst
		conns = append(conns, conn{h: tp.hold(c.w, label, c.dst, c.send), serverSees: c.serverSees})
	}

	// An inbound flow (a published port): the VM's replies must pass.
	vmServer := tp.startServer("vmsrv", w.vm.netns, map[string]any{"raw": []string{":8080"}})
	inbound := tp.hold(who{label: "public", netns: tp.public}, "public to the VM's server", net.JoinHostPort(ipVM, "8080"), raw)

	i := d.since()
	d.signal(syscall.SIGCONT)
	if _, ok := waitRestored(t, d, i); !ok {
		t.Errorf("egressfw did not restore its table within 5s of resuming; reloading it to test the connections")
		d.signal(syscall.SIGHUP)
		if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "config reloaded" }, 5*time.Second); !ok {
			t.Fatalf("no reload either:\n%s", d.logText())
		}
	}
	for _, c := range conns {
		before := c.serverSees()
		reply, errText := c.h.use()
		time.Sleep(200 * time.Millisecond) // the server's event, if any, is printed by then
		if n := c.serverSees() - before; n != 0 || reply != "" {
			t.Errorf("%s: a connection from the gap carried a request after the restore: server saw %d, client got %q (err %q)",
				c.h.label, n, reply, errText)
		} else {
			t.Logf("%s: client got %q, err %q; server saw nothing", c.h.label, reply, errText)
		}
	}
	reply, errText := inbound.use()
	served := vmServer.waitFor(func(e srvEvent) bool { return e.Ev == "raw" && e.First == "client" }, 2*time.Second)
	if reply == "" || errText != "" || !served {
		t.Errorf("an inbound connection to the VM from the gap: client got %q (err %q), VM server served it: %v; want the reply",
			reply, errText, served)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

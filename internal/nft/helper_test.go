package nft

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
	"golang.org/x/sys/unix"
)

// helperEnv makes the re-executed test binary act as a client process:
// "tcp|udp ADDR [fsuid=N] [payload=S]". It prints one line, "OK local=..."
// or "ERR ...".
const helperEnv = "EGRESSFW_NFT_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		fmt.Println(helperMain(spec))
		os.Exit(0)
	}
	if os.Geteuid() == 0 {
		netnstest.RemoveStale(prefix)
	}
	os.Exit(m.Run())
}

func helperMain(spec string) string {
	f := strings.Fields(spec)
	if len(f) < 2 {
		return "ERR bad helper spec " + spec
	}
	network, addr, payload, repeat, bindDev, srcPort := f[0], f[1], "x", 1, "", 0
	runtime.LockOSThread() // the socket must be created on the thread with the fsuid
	for _, opt := range f[2:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "fsuid":
			var uid int
			fmt.Sscan(v, &uid)
			unix.Setfsuid(uid) // per thread; the new socket's owner becomes uid
		case "payload":
			payload = v
		case "repeat":
			fmt.Sscan(v, &repeat)
		case "bind":
			bindDev = v
		case "src":
			fmt.Sscan(v, &srcPort)
		}
	}
	if proto, ok := strings.CutPrefix(network, "dns+"); ok {
		return dnsExchange(proto, addr)
	}
	for i := 1; i < repeat; i++ { // all but the last; each must connect
		if res := dialOnce(network, addr, payload, bindDev, srcPort); !strings.HasPrefix(res, "OK") {
			return fmt.Sprintf("%s (attempt %d of %d)", res, i, repeat)
		}
	}
	return dialOnce(network, addr, payload, bindDev, srcPort)
}

// dialOnce connects, writes payload and reports "OK local=..." or "ERR ...".
func dialOnce(network, addr, payload, bindDev string, srcPort int) string {
	d := net.Dialer{Timeout: 700 * time.Millisecond}
	if srcPort != 0 { // reuse a source port another socket just used (its flow's tuple)
		d.LocalAddr = &net.UDPAddr{Port: srcPort}
		if network == "tcp" {
			d.LocalAddr = &net.TCPAddr{Port: srcPort}
		}
	}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if bindDev != "" && serr == nil { // as curl --interface does: route by device, not by table
				serr = unix.BindToDevice(int(fd), bindDev)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
	c, err := d.Dial(network, addr)
	if err != nil {
		return "ERR " + err.Error()
	}
	defer c.Close()
	if _, err := c.Write([]byte(payload)); err != nil {
		return "ERR write: " + err.Error()
	}
	if network == "udp" { // a rejected datagram's ICMP error shows on the next call
		time.Sleep(50 * time.Millisecond)
		if _, err := c.Write([]byte(payload)); err != nil {
			return "ERR write: " + err.Error()
		}
	}
	return "OK local=" + c.LocalAddr().String()
}

// client describes one helper run.
type client struct {
	cgroup  string // absolute cgroup dir to start in, or ""
	fsuid   int    // socket owner uid, or 0
	bindDev string // SO_BINDTODEVICE, or ""
	srcPort int    // source port to bind (with SO_REUSEADDR), or 0
}

// runClient runs the helper inside ns (and the client's cgroup, placed there
// at clone time) and returns its one-line result.
func runClient(t *testing.T, ns *testNetns, c client, network, addr, payload string) string {
	t.Helper()
	spec := fmt.Sprintf("%s %s payload=%s", network, addr, payload)
	if c.fsuid != 0 {
		spec += fmt.Sprintf(" fsuid=%d", c.fsuid)
	}
	if c.bindDev != "" {
		spec += " bind=" + c.bindDev
	}
	if c.srcPort != 0 {
		spec += fmt.Sprintf(" src=%d", c.srcPort)
	}
	cmd := ns.Cmd(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	if c.cgroup != "" {
		closeFD, err := netnstest.IntoCgroup(cmd, c.cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFD()
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %q: %v: %s", spec, err, out)
	}
	return strings.TrimSpace(string(out))
}

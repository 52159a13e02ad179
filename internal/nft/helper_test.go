package nft

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

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
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns.name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	if c.cgroup != "" {
		dir, err := os.Open(c.cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %q: %v: %s", spec, err, out)
	}
	return strings.TrimSpace(string(out))
}

// cgroup2Mount finds the cgroup2 mount point from mountinfo (package cgroup
// does this for the product; leaf packages do not import each other).
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && fields[3] == "/" {
				return fields[4]
			}
		}
	}
	t.Skip("no cgroup2 mount")
	return ""
}

// testCgroups creates <mount>/egressfw-test-XXX and returns the mount and
// the test's relative root; everything below is removed at test end.
func testCgroups(t *testing.T) (mnt, rel string) {
	t.Helper()
	mnt = cgroup2Mount(t)
	dir, err := os.MkdirTemp(mnt, "egressfw-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroupTree(t, dir) })
	return mnt, filepath.Base(dir)
}

// removeCgroupTree removes dir and its sub-cgroups, deepest first (the
// helper processes have exited by then, so they are empty).
func removeCgroupTree(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(t, filepath.Join(dir, e.Name()))
		}
	}
	var err error
	for range 50 { // a just-exited child may still be counted for a moment
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("remove cgroup %s: %v", dir, err)
}

// cgroupID is the inode number of a cgroup directory.
func cgroupID(t *testing.T, dir string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

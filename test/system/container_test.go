//go:build system

package system

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// container is a Debian rootfs booted with systemd-nspawn in its own network
// namespace and its own cgroup subtree, which cleanup kills and removes.
type container struct {
	t       *testing.T
	name    string   // machine name and rootfs directory name
	dir     string   // temporary directory holding the rootfs
	root    string   // the rootfs
	cgroups []string // the test's cgroup in each hierarchy nspawn uses
	cmd     *exec.Cmd
	leader  int // the container's PID 1, as the host sees it
	exited  chan struct{}
}

// bootContainer unpacks tarball and boots it. Everything it creates is
// removed by t.Cleanup, also when the test fails.
func bootContainer(t *testing.T, tarball string) *container {
	t.Helper()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	c := &container{t: t, name: "egressfw-systest-" + hex.EncodeToString(suffix)}
	var err error
	if c.dir, err = os.MkdirTemp("/var/tmp", c.name+"-"); err != nil {
		t.Fatalf("creating the container directory: %v", err)
	}
	c.root = filepath.Join(c.dir, c.name)
	t.Cleanup(c.cleanup)
	if err := os.Mkdir(c.root, 0o755); err != nil {
		t.Fatalf("creating the rootfs directory: %v", err)
	}
	if out, err := exec.Command("tar", "-C", c.root, "--numeric-owner", "--xattrs", "-xpf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("unpacking the rootfs: %v\n%s", err, out)
	}
	if err := c.makeCgroups(); err != nil {
		t.Fatalf("creating the test cgroup: %v", err)
	}
	c.boot()
	return c
}

// boot starts systemd-nspawn on the rootfs and waits until the container's
// systemd has finished booting.
func (c *container) boot() {
	t := c.t
	t.Helper()
	exited := make(chan struct{})
	c.exited = exited
	// The wrapper moves itself into the test cgroup(s) before exec'ing
	// nspawn, so the container and everything it starts stay below them.
	script := `for f in "$@"; do echo $$ > "$f/cgroup.procs"; done; exec systemd-nspawn ` +
		`--boot --register=no --keep-unit --private-network --console=pipe ` +
		`--machine=` + c.name + ` -D ` + c.root
	c.cmd = exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, c.cgroups...)...)
	// A pure cgroup2 container, as on a Debian 12 host, also on hybrid hosts.
	c.cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	log, err := os.OpenFile(filepath.Join(c.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("creating the console log: %v", err)
	}
	c.cmd.Stdout, c.cmd.Stderr = log, log
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting systemd-nspawn: %v", err)
	}
	cmd := c.cmd
	go func() { cmd.Wait(); log.Close(); close(exited) }()

	if err := c.waitLeader(20 * time.Second); err != nil {
		t.Fatalf("waiting for the container's init: %v\n%s", err, c.console())
	}
	// degraded is fine: some units cannot run in a container. Until PID 1
	// opens its private socket, systemctl cannot connect at all ("Failed
	// to connect", or "offline" when only stdout comes back).
	var out string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ = c.run(90*time.Second, "systemctl", "is-system-running", "--wait")
		if !strings.Contains(out, "Failed to connect") && strings.TrimSpace(out) != "offline" {
			break
		}
	}
	if s := strings.TrimSpace(out); s != "running" && s != "degraded" {
		failed, _ := c.run(10*time.Second, "systemctl", "--failed", "--no-legend")
		t.Fatalf("container did not boot: state %q\nfailed units: %s\n%s", s, failed, c.console())
	}
}

// makeCgroups creates the test cgroup in the cgroup2 hierarchy and, on
// hybrid hosts, in the name=systemd hierarchy nspawn tracks itself in.
func (c *container) makeCgroups() error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		p := filepath.Join(m, c.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		c.cgroups = append(c.cgroups, p)
	}
	return nil
}

// cgroupMounts returns the cgroup2 mount point (first) and the name=systemd
// v1 mount point if there is one, from /proc/self/mountinfo.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	defer f.Close()
	var v2, v1 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || a[3] != "/" {
			continue
		}
		switch {
		case b[0] == "cgroup2" && v2 == "":
			v2 = a[4]
		case b[0] == "cgroup" && strings.Contains(","+b[2]+",", ",name=systemd,") && v1 == "":
			v1 = a[4]
		}
	}
	if v2 == "" {
		return nil, errors.New("no cgroup2 mount")
	}
	if v1 == "" {
		return []string{v2}, nil
	}
	return []string{v2, v1}, nil
}

// waitLeader finds nspawn's child, the container's init.
func (c *container) waitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return errors.New("systemd-nspawn exited")
		default:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.cmd.Process.Pid, c.cmd.Process.Pid))
		if err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				pid, _ := strconv.Atoi(f[0])
				comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				if strings.TrimSpace(string(comm)) == "systemd" {
					c.leader = pid
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("timed out")
}

// run executes a command inside the container (all its namespaces) and
// returns its combined output.
func (c *container) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"-t", strconv.Itoa(c.leader), "-a", "--",
		"env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%q timed out after %v", strings.Join(args, " "), timeout)
	}
	return string(out), err
}

// sh runs a shell script inside the container and fails t if it fails.
func (c *container) sh(t *testing.T, script string) string {
	t.Helper()
	out, err := c.run(2*time.Minute, "/bin/sh", "-ec", script)
	if err != nil {
		t.Fatalf("in container: %s\n%v\n%s", script, err, out)
	}
	return out
}

// copyIn copies a host file to path inside the rootfs with mode.
func (c *container) copyIn(src, path string, mode os.FileMode) {
	c.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		c.t.Fatalf("reading %s: %v", src, err)
	}
	dst := filepath.Join(c.root, path)
	if err := os.WriteFile(dst, b, mode); err != nil {
		c.t.Fatalf("copying %s into the container: %v", src, err)
	}
}

func (c *container) console() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "console.log"))
	return tail(b, 40)
}

// cleanup kills every process of the container, waits for nspawn, removes
// the test cgroups, nspawn's propagation directory and the rootfs.
func (c *container) cleanup() {
	t := c.t
	if c.cmd != nil && c.cmd.Process != nil {
		if len(c.cgroups) > 0 {
			// cgroup.kill (Linux 5.14) SIGKILLs the whole subtree at once.
			if err := os.WriteFile(filepath.Join(c.cgroups[0], "cgroup.kill"), []byte("1"), 0); err != nil {
				t.Logf("cleanup: cgroup.kill: %v; killing the leader", err)
				if c.leader > 0 {
					syscallKill(c.leader)
				}
				c.cmd.Process.Kill()
			}
		}
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("cleanup: systemd-nspawn (pid %d) did not exit", c.cmd.Process.Pid)
		}
	}
	for _, cg := range c.cgroups {
		if err := removeCgroupTree(cg); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	os.Remove(filepath.Join("/run/systemd/nspawn/propagate", c.name))
	if c.dir != "" {
		if mounted(c.dir) {
			t.Errorf("cleanup: something is still mounted under %s; leaving it", c.dir)
			return
		}
		if err := os.RemoveAll(c.dir); err != nil {
			t.Errorf("cleanup: removing %s: %v", c.dir, err)
		}
	}
}

// removeCgroupTree removes a cgroup directory and its children, deepest
// first, retrying while the killed processes are being reaped.
func removeCgroupTree(root string) error {
	var err error
	for try := 0; try < 50; try++ {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, e error) error {
			if e == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		err = nil
		for i := len(dirs) - 1; i >= 0; i-- {
			if e := os.Remove(dirs[i]); e != nil && !os.IsNotExist(e) {
				err = fmt.Errorf("removing cgroup %s: %w", dirs[i], e)
			}
		}
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// mounted reports whether anything is mounted at or below dir.
func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			return true
		}
	}
	return false
}

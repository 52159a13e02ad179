package docker

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerd is a real Docker daemon (Debian's docker.io, vfs storage) in a
// network namespace the test creates, as test/netns runs one.
type dockerd struct {
	t          *testing.T
	ns, dir    string
	sock, cgrp string
	cmd        *exec.Cmd
	done       chan struct{}
}

const testImage = "egfw-busybox"

func startDockerd(t *testing.T) *dockerd {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run dockerd in a network namespace (CI runs as root)")
	}
	for _, bin := range []string{"dockerd", "docker", "busybox", "ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: apt-get install -y docker.io busybox-static iproute2 (make deps does)", bin)
		}
	}
	id := fmt.Sprintf("egfw-dk-%d", os.Getpid())
	d := &dockerd{t: t, ns: id, dir: filepath.Join(os.TempDir(), id), cgrp: id + "-docker"}
	d.sock = filepath.Join(d.dir, "sock")
	run(t, "ip", "netns", "add", d.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", d.ns).Run() })
	run(t, "ip", "-n", d.ns, "link", "set", "lo", "up")
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d.dir) })
	t.Cleanup(func() { removeCgroups(t, d.cgrp) })
	d.start()
	t.Cleanup(d.cleanup)
	d.buildImage()
	return d
}

func (d *dockerd) start() {
	d.cmd = exec.Command("nsenter", "--net=/run/netns/"+d.ns, "--", "dockerd", "--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"), "-H", "unix://"+d.sock, "--pidfile", filepath.Join(d.dir, "pid"),
		"--storage-driver", "vfs", "--cgroup-parent", "/"+d.cgrp, "--shutdown-timeout", "1")
	logf, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start dockerd: %v", err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); logf.Close(); close(d.done) }()
	for deadline := time.Now().Add(60 * time.Second); exec.Command("docker", "-H", "unix://"+d.sock, "version").Run() != nil; {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
			d.t.Fatalf("dockerd did not come up in 60s:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop ends dockerd (SIGTERM, then SIGKILL after 20s).
func (d *dockerd) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

func (d *dockerd) cleanup() {
	select {
	case <-d.done:
		return
	default:
	}
	if ids := strings.Fields(d.try("ps", "-aq")); len(ids) > 0 {
		d.try(append([]string{"rm", "-f"}, ids...)...)
	}
	d.try("network", "prune", "-f")
	d.stop()
}

func (d *dockerd) try(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + d.sock}, args...)...).CombinedOutput()
	return string(out)
}

func (d *dockerd) docker(args ...string) string {
	d.t.Helper()
	cmd := exec.Command("docker", append([]string{"-H", "unix://" + d.sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// buildImage builds an image FROM scratch holding a static busybox.
func (d *dockerd) buildImage() {
	ctx := filepath.Join(d.dir, "image")
	bb, _ := exec.LookPath("busybox")
	data, err := os.ReadFile(bb)
	if err == nil {
		err = os.MkdirAll(ctx, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(ctx, "busybox"), data, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n"), 0o644)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	d.docker("build", "-q", "-t", testImage, ctx)
}

// ifindex is the ifindex of dev in namespace ns (a path).
func ifindex(t *testing.T, ns, dev string) int {
	t.Helper()
	out := run(t, "nsenter", "--net="+ns, "ip", "-o", "link", "show", dev)
	n, err := strconv.Atoi(strings.SplitN(out, ":", 2)[0])
	if err != nil {
		t.Fatalf("ifindex of %s: %q", dev, out)
	}
	return n
}

// peerIndex is the host-side ifindex of the container's eth0 as the
// container sees it ("eth0@if7").
func peerIndex(t *testing.T, pid, dev string) int {
	t.Helper()
	out := run(t, "nsenter", "--net=/proc/"+pid+"/ns/net", "ip", "-o", "link", "show", dev)
	_, after, _ := strings.Cut(out, "@if")
	n, err := strconv.Atoi(strings.SplitN(after, ":", 2)[0])
	if err != nil {
		t.Fatalf("peer of %s: %q", dev, out)
	}
	return n
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// removeCgroups removes the (empty) cgroup directory name from every
// cgroup hierarchy, as test/netns does for its dockerd.
func removeCgroups(t *testing.T, name string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !(strings.HasPrefix(post, "cgroup ") || strings.HasPrefix(post, "cgroup2 ")) {
			continue
		}
		var dirs []string
		filepath.WalkDir(filepath.Join(fields[4], name), func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil {
				t.Errorf("remove Docker's cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

// hostPortsOf is the real port finder of d's namespace.
func hostPortsOf(t *testing.T, d *dockerd) *HostPorts {
	nsf, err := os.Open("/run/netns/" + d.ns)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := NewHostPorts(int(nsf.Fd()))
	nsf.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ports.Close)
	return ports
}

// followReal follows d with the real port finder of d's namespace.
func followReal(t *testing.T, d *dockerd) <-chan Snapshot {
	ports := hostPortsOf(t, d)
	f, err := New(Config{Socket: d.sock, Ports: ports, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Snapshot, 100)
	done := make(chan struct{})
	go func() { f.Run(ctx, func(s Snapshot) { ch <- s }); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

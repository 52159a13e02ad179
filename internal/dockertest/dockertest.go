// Package dockertest runs a real Docker daemon (Debian's docker.io), or
// Podman's Docker-compatible API service (podman.go), in a network
// namespace a test made, with vfs storage and an image FROM scratch
// holding a static busybox (nothing can be pulled in the tests).
// It is test support and is never linked into the egressfw binary.
package dockertest

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// Image is the image BuildImage builds: FROM scratch, /bin/busybox.
const Image = "egfw-busybox"

// Dockerd is a running dockerd. Its containers, networks, data, cgroups
// and process are removed when the test ends.
type Dockerd struct {
	Sock string // the Engine API's unix socket
	Dir  string // its data, exec root, pid file and log

	t      testing.TB
	netns  string // under /run/netns
	cgroup string // parent of its containers' cgroups
	proc
}

// Start starts dockerd in the network namespace netns (a name or a path,
// see netnstest.Cmd), with its files in <tmp>/<id>-dk and its containers'
// cgroups below /<id>-docker (not the host-wide /docker). id must be
// unique per process (netnstest.UniqueName: netnstest.RemoveStale then
// knows the files of a crashed run).
func Start(t testing.TB, netns, id string) *Dockerd {
	t.Helper()
	for _, bin := range []string{"dockerd", "docker", "busybox", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: apt-get install -y docker.io busybox-static (make deps does)", bin)
		}
	}
	d := &Dockerd{t: t, netns: netns, Dir: filepath.Join(os.TempDir(), id+"-dk"), cgroup: id + "-docker"}
	d.Sock = filepath.Join(d.Dir, "sock")
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d.Dir) })
	t.Cleanup(func() { removeCgroups(t, d.cgroup) })
	d.Up()
	t.Cleanup(d.cleanup)
	return d
}

// Up starts dockerd (again) and waits until it answers. It is started
// with nsenter (ip netns exec would remount /sys and hide the cgroup v1
// mounts dockerd needs) and stops its containers within a second.
func (d *Dockerd) Up() {
	t := d.t
	t.Helper()
	cmd := netnstest.Cmd(d.netns, "dockerd", "--data-root", filepath.Join(d.Dir, "data"),
		"--exec-root", filepath.Join(d.Dir, "exec"), "-H", "unix://"+d.Sock,
		"--pidfile", filepath.Join(d.Dir, "pid"), "--storage-driver", "vfs",
		"--cgroup-parent", "/"+d.cgroup, "--shutdown-timeout", "1")
	if err := d.start(cmd, filepath.Join(d.Dir, "dockerd.log")); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("docker", "-H", "unix://"+d.Sock, "version").Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.Dir, "dockerd.log"))
			t.Fatalf("dockerd did not come up in 60s:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop ends dockerd (SIGTERM, then SIGKILL after 20s); its containers stop.
func (d *Dockerd) Stop() { d.stop() }

func (d *Dockerd) cleanup() {
	select {
	case <-d.done:
	default:
		if ids := strings.Fields(d.Try("ps", "-aq")); len(ids) > 0 {
			d.Try(append([]string{"rm", "-f"}, ids...)...)
		}
		d.Try("network", "prune", "-f")
		d.Stop()
	}
}

// Try runs the docker CLI and returns its output, errors included.
func (d *Dockerd) Try(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + d.Sock}, args...)...).CombinedOutput()
	return string(out)
}

// Docker runs the docker CLI and fails the test on error.
func (d *Dockerd) Docker(args ...string) string {
	d.t.Helper()
	cmd := exec.Command("docker", append([]string{"-H", "unix://" + d.Sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// BuildImage builds Image.
func (d *Dockerd) BuildImage() {
	d.t.Helper()
	ctx, err := imageContext(filepath.Join(d.Dir, "image"))
	if err != nil {
		d.t.Fatal(err)
	}
	d.Docker("build", "-q", "-t", Image, ctx)
}

// imageContext writes Image's build context (a Dockerfile and the static
// busybox) to dir and returns dir.
func imageContext(dir string) (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(bb)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "busybox"), data, 0o755)
	}
	if err == nil {
		df := "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n"
		err = os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644)
	}
	return dir, err
}

// removeCgroups removes the (empty, once the containers are gone) cgroup
// directory name from every cgroup hierarchy, v1 and v2.
func removeCgroups(t testing.TB, name string) {
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
		for i := len(dirs) - 1; i >= 0; i-- { // children first
			if err := os.Remove(dirs[i]); err != nil {
				t.Errorf("remove Docker's cgroup %s: %v", dirs[i], err)
			}
		}
	}
}

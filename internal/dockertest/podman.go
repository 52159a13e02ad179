package dockertest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// Podman is a running rootful Podman API service (`podman system service`:
// its Docker-compatible socket, Debian's podman 4.3 with netavark) in a
// network namespace a test made. Its storage, network configs, events and
// containers' cgroups are the test's own; containers, networks and the
// service are removed when the test ends.
type Podman struct {
	Sock string // the API's unix socket, Docker-compatible
	Dir  string

	t      testing.TB
	netns  string
	cgroup string
	proc
}

// podmanConf is the containers.conf of the test's Podman: no systemd here
// (cgroupfs, events in a file) and the test's open-files limit (Podman's
// default, 1048576, is above it, and runc then refuses to start).
const podmanConf = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
[network]
network_config_dir = %q
`

// StartPodman starts the Podman service in network namespace netns (as
// Start does dockerd), its files in <tmp>/<id>-pd, its containers'
// cgroups below /<id>-podman.
func StartPodman(t testing.TB, netns, id string) *Podman {
	t.Helper()
	for _, bin := range []string{"podman", "busybox", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not found: apt-get install -y podman busybox-static", bin)
		}
	}
	p := &Podman{t: t, netns: netns, Dir: filepath.Join(os.TempDir(), id+"-pd"), cgroup: id + "-podman"}
	p.Sock = filepath.Join(p.Dir, "sock")
	for _, d := range []string{"tmp", "net"} {
		if err := os.MkdirAll(filepath.Join(p.Dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(podmanConf, filepath.Join(p.Dir, "events.log"), filepath.Join(p.Dir, "tmp"), filepath.Join(p.Dir, "net"))
	if err := os.WriteFile(filepath.Join(p.Dir, "containers.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(p.Dir) })
	t.Cleanup(func() { removeCgroups(t, p.cgroup) })
	p.Up()
	t.Cleanup(p.cleanup)
	return p
}

// command is the podman CLI with the test's storage and config.
func (p *Podman) command(ctx context.Context, args ...string) *exec.Cmd {
	argv := append([]string{"--net=" + netnstest.PathOf(p.netns), "--", "podman", "--root", filepath.Join(p.Dir, "root"),
		"--runroot", filepath.Join(p.Dir, "run"), "--storage-driver", "vfs"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(p.Dir, "containers.conf"))
	return cmd
}

// Up starts the service (again) and waits until it answers.
func (p *Podman) Up() {
	t := p.t
	t.Helper()
	cmd := p.command(context.Background(), "system", "service", "--time=0", "unix://"+p.Sock)
	if err := p.start(cmd, filepath.Join(p.Dir, "service.log")); err != nil {
		t.Fatalf("start podman system service: %v", err)
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", p.Sock)
	}}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := c.Get("http://podman/_ping"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.Dir, "service.log"))
			t.Fatalf("podman system service did not answer in 30s:\n%s", log)
		}
	}
}

// Stop ends the service. Unlike dockerd's, Podman's containers keep
// running without it (each has its own conmon).
func (p *Podman) Stop() { p.stop() }

func (p *Podman) cleanup() {
	p.Try("rm", "-a", "-f", "-t", "0")
	p.Try("network", "prune", "-f")
	p.Stop()
}

// Try runs the podman CLI and returns its output, errors included.
func (p *Podman) Try(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := p.command(ctx, args...).CombinedOutput()
	return string(out)
}

// Podman runs the podman CLI and fails the test on error.
func (p *Podman) Podman(args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := p.command(ctx, args...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Run starts a detached container of Image running sleep, with its cgroup
// below the test's, and returns its id.
func (p *Podman) Run(name string, args ...string) string {
	p.t.Helper()
	return p.Podman(append(append([]string{"run", "-d", "--name", name, "--cgroup-parent", "/" + p.cgroup}, args...), Image, "sleep", "600")...)
}

// BuildImage builds Image.
func (p *Podman) BuildImage() {
	p.t.Helper()
	ctx, err := imageContext(filepath.Join(p.Dir, "image"))
	if err != nil {
		p.t.Fatal(err)
	}
	p.Podman("build", "-q", "-t", Image, ctx)
}

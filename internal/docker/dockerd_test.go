package docker

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/dockertest"
	"github.com/egressfw/egressfw/internal/netnstest"
)

// dockerd is a real Docker daemon in a network namespace the test
// creates, as test/netns runs one (internal/dockertest).
type dockerd struct {
	*dockertest.Dockerd
	ns string
}

const testImage = dockertest.Image

func startDockerd(t *testing.T) *dockerd {
	ns := netnstest.New(t, netnstest.UniqueName("egfw-dk-"))
	d := &dockerd{Dockerd: dockertest.Start(t, ns.Name, ns.Name), ns: ns.Name}
	d.BuildImage()
	return d
}

// ifindex is the ifindex of dev in namespace ns (a path).
func ifindex(t *testing.T, ns, dev string) int {
	t.Helper()
	out := netnstest.Output(t, netnstest.Cmd(ns, "ip", "-o", "link", "show", dev))
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
	out := netnstest.Output(t, netnstest.Cmd("/proc/"+pid+"/ns/net", "ip", "-o", "link", "show", dev))
	_, after, _ := strings.Cut(out, "@if")
	n, err := strconv.Atoi(strings.SplitN(after, ":", 2)[0])
	if err != nil {
		t.Fatalf("peer of %s: %q", dev, out)
	}
	return n
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	return netnstest.Run(t, name, args...)
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
	return runFollower(t, Config{Socket: d.Sock, Ports: hostPortsOf(t, d), Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

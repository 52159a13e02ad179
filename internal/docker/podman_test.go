package docker

import (
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/dockertest"
	"github.com/egressfw/egressfw/internal/netnstest"
)

// endpoint returns c's endpoint on network name.
func endpoint(c Container, name string) (Endpoint, bool) {
	for _, ep := range c.Endpoints {
		if ep.Network == name {
			return ep, true
		}
	}
	return Endpoint{}, false
}

// TestRealPodman follows rootful Podman's Docker-compatible API (Debian's
// podman 4.3, netavark bridge) in a test namespace: the engine named; a
// labelled container reported with its labels and the bridge port its
// eth0 is paired with (checked against the container's own view); a
// second network (Podman's network events name no container: the
// follower lists them all); a rename; a restart (a new port); removal.
// Podman's containers outlive its API service: stopped, the snapshot is
// not live and keeps them; started again, it is live with the same ones.
func TestRealPodman(t *testing.T) {
	ns := netnstest.New(t, netnstest.UniqueName("egfw-pd-"))
	p := dockertest.StartPodman(t, ns.Name, ns.Name)
	p.BuildImage()
	nsf, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	ports, err := NewHostPorts(int(nsf.Fd()))
	nsf.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ports.Close)
	ch := runFollower(t, Config{Socket: p.Sock, Ports: ports, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	s, _ := waitReal(t, ch, "the engine", 10*time.Second, func(s Snapshot) bool { return s.Live })
	if !strings.HasPrefix(s.Engine, "Podman Engine 4.") {
		t.Errorf("engine %q, want Podman's", s.Engine)
	}

	start := time.Now()
	p.Run("c1", "--label", "egressfw.tenant=trusted")
	ran := time.Since(start)
	s, after := waitReal(t, ch, "c1 with its port", 5*time.Second, func(s Snapshot) bool {
		c, ok := byName(s, "c1")
		return ok && len(c.Endpoints) == 1 && c.Endpoints[0].Port != 0
	})
	t.Logf("podman run took %v; c1 reported %v after it returned", ran, after)
	c1, _ := byName(s, "c1")
	pid := p.Podman("inspect", "-f", "{{.State.Pid}}", "c1")
	ep := c1.Endpoints[0]
	if want := peerIndex(t, pid, "eth0"); ep.Port != want {
		t.Errorf("c1's port %d, want %d (the peer of its eth0)", ep.Port, want)
	}
	if want := ifindex(t, ns.Path(), "podman0"); ep.Bridge != want {
		t.Errorf("c1's bridge %d, want podman0 (%d)", ep.Bridge, want)
	}
	if c1.Labels["egressfw.tenant"] != "trusted" || ep.Network != "podman" || ep.IPv4.String() != p.Podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "c1") || len(ep.MAC) != 6 {
		t.Errorf("c1 = %+v", c1)
	}

	p.Podman("network", "create", "--subnet", "10.89.0.0/24", "n2")
	p.Podman("network", "connect", "n2", "c1")
	s, _ = waitReal(t, ch, "c1 on n2", 5*time.Second, func(s Snapshot) bool {
		c, _ := byName(s, "c1")
		e, ok := endpoint(c, "n2")
		return ok && e.Port != 0
	})
	c1, _ = byName(s, "c1")
	n2, _ := endpoint(c1, "n2")
	if want := peerIndex(t, pid, "eth1"); n2.Port != want || !netip.MustParsePrefix("10.89.0.0/24").Contains(n2.IPv4) || n2.Bridge == ep.Bridge {
		t.Errorf("c1 on n2: %+v, want port %d on a bridge of its own", n2, want)
	}

	p.Podman("rename", "c1", "c1b")
	waitReal(t, ch, "the new name", 5*time.Second, func(s Snapshot) bool { _, ok := byName(s, "c1b"); return ok })

	p.Podman("restart", "-t", "0", "c1b")
	waitReal(t, ch, "a new port after the restart", 10*time.Second, func(s Snapshot) bool {
		c, _ := byName(s, "c1b")
		e, _ := endpoint(c, "podman")
		return e.Port != 0 && e.Port != ep.Port
	})

	p.Podman("rm", "-f", "-t", "0", "c1b")
	waitReal(t, ch, "c1b gone", 5*time.Second, func(s Snapshot) bool { _, ok := byName(s, "c1b"); return !ok })

	p.Run("c2")
	waitReal(t, ch, "c2", 5*time.Second, func(s Snapshot) bool { c, ok := byName(s, "c2"); return ok && c.Endpoints[0].Port != 0 })
	p.Stop()
	waitReal(t, ch, "the engine lost, c2 kept", 20*time.Second, func(s Snapshot) bool { _, ok := byName(s, "c2"); return !s.Live && ok })
	p.Up()
	waitReal(t, ch, "the engine back with c2", 30*time.Second, func(s Snapshot) bool { _, ok := byName(s, "c2"); return s.Live && ok })
}

package docker

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitReal is waitSnap with a longer deadline (a real engine, a shared
// machine).
func waitReal(t *testing.T, ch <-chan Snapshot, what string, within time.Duration, ok func(Snapshot) bool) (Snapshot, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := time.After(within)
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s, time.Since(start)
			}
		case <-deadline:
			t.Fatalf("no snapshot with %s within %v", what, within)
		}
	}
}

func byName(s Snapshot, name string) (Container, bool) {
	for _, c := range s.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return Container{}, false
}

// TestRealDockerd follows a real dockerd in a test namespace: a labelled
// container started after the follower is reported within a second, with
// the bridge port the container's eth0 is paired with (checked against
// what the container itself sees, which the follower never reads); a
// second network, a rename, a restart (a new veth), removal; dockerd
// stopped (Live false, containers kept) and started again.
func TestRealDockerd(t *testing.T) {
	d := startDockerd(t)
	ch := followReal(t, d)
	waitReal(t, ch, "the engine", 10*time.Second, func(s Snapshot) bool { return s.Live })

	start := time.Now()
	d.Docker("run", "-d", "--name", "c1", "--label", "egressfw.tenant=trusted", testImage, "sleep", "600")
	ran := time.Since(start)
	s, after := waitReal(t, ch, "c1 with its port", 5*time.Second, func(s Snapshot) bool {
		c, ok := byName(s, "c1")
		return ok && len(c.Endpoints) == 1 && c.Endpoints[0].Port != 0
	})
	t.Logf("docker run took %v; c1 reported %v after it returned", ran, after)
	if after > time.Second {
		t.Errorf("c1 reported %v after docker run returned, want within 1s", after)
	}
	c1, _ := byName(s, "c1")
	pid := d.Docker("inspect", "-f", "{{.State.Pid}}", "c1")
	if want := peerIndex(t, pid, "eth0"); c1.Endpoints[0].Port != want {
		t.Errorf("c1's port %d, want %d (the peer of its eth0)", c1.Endpoints[0].Port, want)
	}
	if want := ifindex(t, "/run/netns/"+d.ns, "docker0"); c1.Endpoints[0].Bridge != want {
		t.Errorf("c1's bridge %d, want docker0 (%d)", c1.Endpoints[0].Bridge, want)
	}
	if c1.Labels["egressfw.tenant"] != "trusted" || !c1.Endpoints[0].IPv4.IsValid() || len(c1.Endpoints[0].MAC) != 6 {
		t.Errorf("c1 = %+v", c1)
	}
	t.Run("by process, without the sandbox path", func(t *testing.T) {
		ports := hostPortsOf(t, d)
		eps := []Endpoint{{Network: "bridge", IPv4: c1.Endpoints[0].IPv4}}
		n, _ := strconv.Atoi(pid)
		if err := ports.Find("/nonexistent", n, eps); err != nil || eps[0].Port != c1.Endpoints[0].Port {
			t.Errorf("Find by pid: %v, port %d, want %d", err, eps[0].Port, c1.Endpoints[0].Port)
		}
	})

	d.Docker("network", "create", "--subnet", "172.30.0.0/24", "n2")
	d.Docker("network", "connect", "n2", "c1")
	s, _ = waitReal(t, ch, "c1 on n2", 5*time.Second, func(s Snapshot) bool {
		c, _ := byName(s, "c1")
		return len(c.Endpoints) == 2 && c.Endpoints[1].Port != 0
	})
	c1, _ = byName(s, "c1")
	n2 := c1.Endpoints[1]
	if want := peerIndex(t, pid, "eth1"); n2.Network != "n2" || n2.Port != want || n2.IPv4.String() != "172.30.0.2" {
		t.Errorf("c1 on n2: %+v, want port %d", n2, want)
	}
	if n2.Bridge == c1.Endpoints[0].Bridge {
		t.Error("both endpoints on one bridge")
	}

	d.Docker("rename", "c1", "c1b")
	waitReal(t, ch, "the new name", 5*time.Second, func(s Snapshot) bool { _, ok := byName(s, "c1b"); return ok })

	old := c1.Endpoints[0].Port
	d.Docker("restart", "-t", "0", "c1b")
	waitReal(t, ch, "a new port after the restart", 10*time.Second, func(s Snapshot) bool {
		c, _ := byName(s, "c1b")
		return len(c.Endpoints) == 2 && c.Endpoints[0].Port != 0 && c.Endpoints[0].Port != old
	})

	d.Docker("rm", "-f", "c1b")
	waitReal(t, ch, "c1b gone", 5*time.Second, func(s Snapshot) bool { _, ok := byName(s, "c1b"); return !ok })

	d.Docker("run", "-d", "--name", "c2", testImage, "sleep", "600")
	s, _ = waitReal(t, ch, "c2", 5*time.Second, func(s Snapshot) bool { c, ok := byName(s, "c2"); return ok && c.Endpoints[0].Port != 0 })
	c2, _ := byName(s, "c2")
	// a port deleted behind the engine's back (no event) is dropped at once
	run(t, "ip", "-n", d.ns, "link", "del", linkName(t, d, c2.Endpoints[0].Port))
	waitReal(t, ch, "c2's deleted port dropped", time.Second, func(s Snapshot) bool {
		c, ok := byName(s, "c2")
		return ok && c.Endpoints[0].Port == 0
	})
	d.Stop() // it stops its containers as it exits
	waitReal(t, ch, "the engine lost", 20*time.Second, func(s Snapshot) bool { return !s.Live })
	d.Up()
	waitReal(t, ch, "the engine back", 30*time.Second, func(s Snapshot) bool { _, ok := byName(s, "c2"); return s.Live && !ok })
	d.Docker("run", "-d", "--name", "c3", testImage, "sleep", "600")
	waitReal(t, ch, "c3 after the restart", 5*time.Second, func(s Snapshot) bool {
		c, ok := byName(s, "c3")
		return ok && c.Endpoints[0].Port != 0
	})
}

// linkName is the name of the link with ifindex ix in d's namespace.
func linkName(t *testing.T, d *dockerd, ix int) string {
	t.Helper()
	for _, l := range strings.Split(run(t, "ip", "-n", d.ns, "-o", "link"), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == fmt.Sprintf("%d:", ix) {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			return name
		}
	}
	t.Fatalf("no link %d", ix)
	return ""
}

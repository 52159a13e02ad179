package docker

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// web and relay are two containers of a compose stack; relay is labelled.
func web() fakeContainer {
	return fakeContainer{ID: "aaaaaaaaaaaa0001", Name: "web", Running: true, Pid: 101, Sandbox: "/run/sb/1",
		Nets: map[string]fakeNet{"bridge": {ID: "net0", IP: "172.17.0.2", MAC: "02:42:ac:11:00:02"}}}
}

func relay() fakeContainer {
	return fakeContainer{ID: "bbbbbbbbbbbb0002", Name: "relay", Running: true, Pid: 102, Sandbox: "/run/sb/2",
		Labels: map[string]string{"egressfw.tenant": "trusted"},
		Nets:   map[string]fakeNet{"bridge": {ID: "net0", IP: "172.17.0.3", IP6: "fd00:17::3", MAC: "02:42:ac:11:00:03"}}}
}

func newPorts() *fakePorts {
	return &fakePorts{ports: map[string]int{"/run/sb/1/bridge": 11, "/run/sb/2/bridge": 12, "/run/sb/2/n2": 22, "/run/sb/3/bridge": 13}}
}

func has(id string) func(Snapshot) bool {
	return func(s Snapshot) bool { _, ok := s.Containers[id]; return ok }
}

func hasNot(id string) func(Snapshot) bool {
	return func(s Snapshot) bool { _, ok := s.Containers[id]; return !ok }
}

// TestFollowInitial: the running containers at start, with names, labels,
// addresses, MACs and bridge ports; stopped ones are left out.
func TestFollowInitial(t *testing.T) {
	e := newFakeEngine(t)
	e.set(web())
	e.set(relay())
	stopped := web()
	stopped.ID, stopped.Running = "cccccccccccc0003", false
	e.set(stopped)
	s := waitSnap(t, follow(t, e, newPorts(), time.Hour), "both containers",
		func(s Snapshot) bool { return len(s.Containers) == 2 })
	if !s.Live || s.Engine != "Docker Engine 20.10.24 (API 1.41)" {
		t.Errorf("Live %v, Engine %q", s.Live, s.Engine)
	}
	r := s.Containers[relay().ID]
	want := Endpoint{Network: "bridge", NetworkID: "net0", IPv4: netip.MustParseAddr("172.17.0.3"),
		IPv6: netip.MustParseAddr("fd00:17::3"), Port: 12, Bridge: 1}
	if len(r.Endpoints) != 1 {
		t.Fatalf("relay endpoints %+v", r.Endpoints)
	}
	got := r.Endpoints[0]
	if got.MAC.String() != "02:42:ac:11:00:03" {
		t.Errorf("MAC %v", got.MAC)
	}
	want.MAC = got.MAC
	if !sameContainer(&Container{Endpoints: []Endpoint{got}}, &Container{Endpoints: []Endpoint{want}}) || r.Name != "relay" || r.Labels["egressfw.tenant"] != "trusted" || r.ShortID() != "bbbbbbbbbbbb" {
		t.Errorf("relay = %+v %+v, want %+v", r, got, want)
	}
}

// TestFollowEvents: start, network connect, rename, die and destroy are
// followed from the event stream.
func TestFollowEvents(t *testing.T) {
	e := newFakeEngine(t)
	e.set(web())
	ports := newPorts()
	ch := follow(t, e, ports, time.Hour)
	waitSnap(t, ch, "web", has(web().ID))
	e.set(relay())
	e.emit("container", "start", relay().ID, map[string]string{"name": "relay"})
	waitSnap(t, ch, "relay started", has(relay().ID))

	e.change(relay().ID, func(c *fakeContainer) { c.Nets["n2"] = fakeNet{ID: "net2", IP: "172.18.0.3", MAC: "02:42:ac:12:00:03"} })
	e.emit("network", "connect", "net2", map[string]string{"container": relay().ID, "name": "n2"})
	s := waitSnap(t, ch, "relay on n2", func(s Snapshot) bool { return len(s.Containers[relay().ID].Endpoints) == 2 })
	if ep := s.Containers[relay().ID].Endpoints[1]; ep.Network != "n2" || ep.Port != 22 {
		t.Errorf("second endpoint %+v, want n2 on port 22", ep)
	}

	e.change(relay().ID, func(c *fakeContainer) { c.Name = "relay2" })
	e.emit("container", "rename", relay().ID, map[string]string{"name": "relay2", "oldName": "/relay"})
	waitSnap(t, ch, "renamed", func(s Snapshot) bool { return s.Containers[relay().ID].Name == "relay2" })

	e.change(web().ID, func(c *fakeContainer) { c.Running = false })
	e.emit("container", "die", web().ID, nil)
	waitSnap(t, ch, "web gone", hasNot(web().ID))

	e.mu.Lock()
	delete(e.containers, relay().ID)
	e.mu.Unlock()
	e.emit("container", "destroy", relay().ID, nil)
	waitSnap(t, ch, "relay gone", hasNot(relay().ID))
}

// TestFollowNothingMissedAtConnect: a container that starts after the
// list is made but before the follower reads the event stream is not
// lost: the stream is opened before the list.
func TestFollowNothingMissedAtConnect(t *testing.T) {
	e := newFakeEngine(t)
	e.set(web())
	e.afterList = func() {
		e.set(relay())
		e.emit("container", "start", relay().ID, nil)
	}
	waitSnap(t, follow(t, e, newPorts(), time.Hour), "relay, started between list and stream",
		func(s Snapshot) bool { return has(web().ID)(s) && has(relay().ID)(s) })
}

// TestFollowStreamBreak: a container that starts while the event stream is
// broken (its start event never delivered) is found by the fresh list the
// follower reads when it reconnects.
func TestFollowStreamBreak(t *testing.T) {
	e := newFakeEngine(t)
	e.set(web())
	ch := follow(t, e, newPorts(), time.Hour)
	waitSnap(t, ch, "web", has(web().ID))
	e.set(relay()) // no event
	e.breakStreams()
	waitSnap(t, ch, "relay after the reconnect", func(s Snapshot) bool { return has(relay().ID)(s) && s.Live })
}

// TestFollowEngineRestart: while the engine is down the known containers
// stay (Live false), a deleted port is dropped even so, and when the
// engine is back its containers replace them.
func TestFollowEngineRestart(t *testing.T) {
	e := newFakeEngine(t)
	e.set(web())
	e.set(relay())
	ports := newPorts()
	ch := follow(t, e, ports, time.Hour)
	waitSnap(t, ch, "both", func(s Snapshot) bool { return len(s.Containers) == 2 })
	e.down()
	s := waitSnap(t, ch, "engine lost", func(s Snapshot) bool { return !s.Live })
	if len(s.Containers) != 2 {
		t.Errorf("containers while the engine is down: %d, want the 2 known", len(s.Containers))
	}
	ports.delete(11) // web's veth is deleted while no one can ask the engine
	s = waitSnap(t, ch, "web's port dropped", func(s Snapshot) bool { return s.Containers[web().ID].Endpoints[0].Port == 0 })
	if s.Live || s.Containers[relay().ID].Endpoints[0].Port != 12 {
		t.Errorf("after a port deletion: %+v", s)
	}
	e.mu.Lock()
	delete(e.containers, web().ID) // the restarted engine runs relay and a new container
	e.mu.Unlock()
	third := web()
	third.ID, third.Name, third.Sandbox = "dddddddddddd0004", "third", "/run/sb/3"
	e.set(third)
	e.up()
	s = waitSnap(t, ch, "engine back", func(s Snapshot) bool { return s.Live && len(s.Containers) == 2 && has(third.ID)(s) })
	if _, ok := s.Containers[web().ID]; ok {
		t.Error("a container the restarted engine does not run is still there")
	}
}

// TestFollowReconcile: changes whose events were lost (the stream stayed
// open) are caught by the periodic reconcile: a container gone, one new,
// one relabelled (as `docker compose up` recreating it with the same
// name would, here with the same id).
func TestFollowReconcile(t *testing.T) {
	e := newFakeEngine(t)
	e.set(web())
	e.set(relay())
	ch := follow(t, e, newPorts(), 200*time.Millisecond)
	waitSnap(t, ch, "both", func(s Snapshot) bool { return len(s.Containers) == 2 })
	e.change(web().ID, func(c *fakeContainer) { c.Running = false })
	e.change(relay().ID, func(c *fakeContainer) { c.Labels = map[string]string{"egressfw.tenant": "media"} })
	third := web()
	third.ID, third.Sandbox = "dddddddddddd0004", "/run/sb/3"
	e.set(third)
	waitSnap(t, ch, "the state without events", func(s Snapshot) bool {
		return hasNot(web().ID)(s) && has(third.ID)(s) && s.Containers[relay().ID].Labels["egressfw.tenant"] == "media"
	})
}

// TestFollowSlowReadLoses: a read begun before the container stopped but
// answered after a fresh list showed it gone (an inspect is slow while the
// engine is busy) does not bring it back.
func TestFollowSlowReadLoses(t *testing.T) {
	e := newFakeEngine(t)
	r := relay()
	e.set(r)
	ch := follow(t, e, newPorts(), 100*time.Millisecond)
	waitSnap(t, ch, "relay", has(r.ID))
	e.mu.Lock()
	e.slow[r.ID] = 500 * time.Millisecond
	e.mu.Unlock()
	e.emit("container", "update", r.ID, nil) // a read that will answer "running", late
	time.Sleep(50 * time.Millisecond)
	e.change(r.ID, func(c *fakeContainer) { c.Running = false }) // stopped; the event is lost
	waitSnap(t, ch, "relay gone (reconcile)", hasNot(r.ID))
	deadline := time.After(time.Second)
	for {
		select {
		case s := <-ch:
			if has(r.ID)(s) {
				t.Fatalf("a stale read brought back a stopped container: %+v", s.Containers[r.ID])
			}
		case <-deadline:
			return
		}
	}
}

// TestFollowPodman: Podman's compatible socket: no EndpointID, the network
// name as NetworkID, null Networks in the list, "died" instead of "die",
// network events that name only the container.
func TestFollowPodman(t *testing.T) {
	e := newFakeEngine(t)
	e.podman = true
	e.set(web())
	ports := newPorts()
	ch := follow(t, e, ports, time.Hour)
	s := waitSnap(t, ch, "web", has(web().ID))
	if s.Engine != "Podman Engine 20.10.24 (API 1.41)" || s.Containers[web().ID].Endpoints[0].NetworkID != "bridge" ||
		s.Containers[web().ID].Endpoints[0].Port != 11 {
		t.Errorf("podman snapshot %+v", s)
	}
	e.set(relay())
	e.emit("container", "start", relay().ID, nil)
	waitSnap(t, ch, "relay", has(relay().ID))
	e.change(relay().ID, func(c *fakeContainer) { c.Nets["n2"] = fakeNet{IP: "172.18.0.3", MAC: "02:42:ac:12:00:03"} })
	e.emit("network", "connect", "", map[string]string{"container": relay().ID})
	waitSnap(t, ch, "relay on n2", func(s Snapshot) bool { return len(s.Containers[relay().ID].Endpoints) == 2 })
	e.change(web().ID, func(c *fakeContainer) { c.Running = false })
	e.emit("container", "died", web().ID, nil)
	waitSnap(t, ch, "web gone", hasNot(web().ID))
}

// TestStaleResultDropped: a read begun before a fresh list that no longer
// shows the container, and answered after it, is dropped.
func TestStaleResultDropped(t *testing.T) {
	e := newFakeEngine(t) // lists no container
	f, err := New(Config{Socket: e.sock, Ports: newPorts(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(f, func(Snapshot) {})
	r := relay()
	c := &Container{ID: r.ID, Name: r.Name}
	l.set(r.ID, entry{seq: l.next(), c: c})
	l.inflight[r.ID] = true
	begun := l.next() // the read begins; its answer will say "running"
	if err := l.rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.apply(context.Background(), result{id: r.ID, seq: begun, c: c})
	if got := l.known[r.ID].c; got != nil {
		t.Fatalf("a read older than the list brought the container back: %+v", got)
	}
}

// TestFollowPending: a snapshot taken while a listed container is still
// being read (its inspect is slow, and the follower does not hold a change
// back longer than emitWait) counts it in Pending; the one after the read
// has Pending 0 and the container.
func TestFollowPending(t *testing.T) {
	e := newFakeEngine(t)
	e.set(web())
	e.set(relay())
	e.slow[relay().ID] = 3 * emitWait
	ch := follow(t, e, newPorts(), time.Hour)
	s := waitSnap(t, ch, "web while relay is read", func(s Snapshot) bool { return s.Live && len(s.Containers) == 1 })
	if s.Pending != 1 {
		t.Errorf("Pending = %d with relay's read in flight, want 1", s.Pending)
	}
	s = waitSnap(t, ch, "relay read", has(relay().ID))
	if s.Pending != 0 {
		t.Errorf("Pending = %d with every read done, want 0", s.Pending)
	}
}

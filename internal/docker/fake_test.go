package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEngine serves the Engine API requests the follower makes, on a unix
// socket, from containers the test changes; it can break the event
// stream, stop and come back (a restarted dockerd), and answer as Podman's
// compatible socket does.
type fakeEngine struct {
	t    *testing.T
	sock string

	mu         sync.Mutex
	containers map[string]*fakeContainer
	streams    map[chan event]bool
	podman     bool                     // Podman's answers: no EndpointID, network name as NetworkID, null Networks in lists
	slow       map[string]time.Duration // inspect delay per container id
	afterList  func()                   // runs once the list is made, before it is sent
	srv        *http.Server
}

type fakeContainer struct {
	ID, Name string
	Labels   map[string]string
	Running  bool
	Pid      int
	Sandbox  string
	Nets     map[string]fakeNet
}

type fakeNet struct{ ID, IP, IP6, MAC string }

func newFakeEngine(t *testing.T) *fakeEngine {
	dir, err := os.MkdirTemp("", "egfw-docker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &fakeEngine{t: t, sock: filepath.Join(dir, "docker.sock"), containers: map[string]*fakeContainer{},
		streams: map[chan event]bool{}, slow: map[string]time.Duration{}}
	e.up()
	t.Cleanup(e.down)
	return e
}

// up starts serving (again).
func (e *fakeEngine) up() {
	ln, err := net.Listen("unix", e.sock)
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", e.version)
	mux.HandleFunc("GET /containers/json", e.list)
	mux.HandleFunc("GET /containers/{id}/json", e.inspect)
	mux.HandleFunc("GET /events", e.events)
	e.mu.Lock()
	e.srv = &http.Server{Handler: mux}
	srv := e.srv
	e.mu.Unlock()
	go srv.Serve(ln)
}

// down stops serving and ends every event stream, as a stopped dockerd.
func (e *fakeEngine) down() {
	e.breakStreams()
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	srv.Close()
	os.Remove(e.sock)
}

// breakStreams ends every open event stream.
func (e *fakeEngine) breakStreams() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.streams {
		close(ch)
		delete(e.streams, ch)
	}
}

// emit sends an event on every open stream.
func (e *fakeEngine) emit(typ, action, id string, attrs map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ev event
	ev.Type, ev.Action, ev.Actor.ID, ev.Actor.Attributes = typ, action, id, attrs
	for ch := range e.streams {
		ch <- ev
	}
}

// set adds or replaces a container (no event).
func (e *fakeEngine) set(c fakeContainer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c.Labels, c.Nets = maps.Clone(c.Labels), maps.Clone(c.Nets)
	e.containers[c.ID] = &c
}

// change edits a container (no event).
func (e *fakeEngine) change(id string, f func(*fakeContainer)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e.containers[id])
}

func (e *fakeEngine) version(w http.ResponseWriter, _ *http.Request) {
	name := "Engine"
	if e.podman {
		name = "Podman Engine"
	}
	json.NewEncoder(w).Encode(map[string]any{"Version": "20.10.24", "ApiVersion": "1.41", "Components": []map[string]string{{"Name": name}}})
}

func (e *fakeEngine) list(w http.ResponseWriter, _ *http.Request) {
	out := e.listed()
	e.mu.Lock()
	after := e.afterList
	e.afterList = nil
	e.mu.Unlock()
	if after != nil {
		after()
	}
	json.NewEncoder(w).Encode(out)
}

func (e *fakeEngine) listed() []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []map[string]any{}
	for _, c := range e.containers {
		if !c.Running {
			continue
		}
		nets := any(map[string]any{})
		if e.podman {
			nets = nil
		}
		out = append(out, map[string]any{"Id": c.ID, "Names": []string{"/" + c.Name}, "State": "running",
			"NetworkSettings": map[string]any{"Networks": nets}})
	}
	return out
}

func (e *fakeEngine) inspect(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e.mu.Lock()
	delay, found := e.slow[id], e.containers[id]
	var c fakeContainer
	if found != nil {
		c = *found // the state when asked, answered after the delay
	}
	podman := e.podman
	e.mu.Unlock()
	time.Sleep(delay)
	if found == nil {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":"No such container: %s"}`, id)
		return
	}
	nets := map[string]any{}
	for name, n := range c.Nets {
		netID, ep := n.ID, "ep-"+name
		if podman {
			netID, ep = name, ""
		}
		nets[name] = map[string]any{"NetworkID": netID, "EndpointID": ep, "IPAddress": n.IP, "GlobalIPv6Address": n.IP6, "MacAddress": n.MAC}
	}
	json.NewEncoder(w).Encode(map[string]any{"Id": c.ID, "Name": "/" + c.Name, "Config": map[string]any{"Labels": c.Labels},
		"State":           map[string]any{"Running": c.Running, "Pid": c.Pid},
		"NetworkSettings": map[string]any{"SandboxKey": c.Sandbox, "Networks": nets}})
}

func (e *fakeEngine) events(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.URL.Query().Get("filters"), `"container"`) {
		http.Error(w, "want a type filter", http.StatusBadRequest)
		return
	}
	ch := make(chan event, 64)
	e.mu.Lock()
	e.streams[ch] = true
	e.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			enc.Encode(ev)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			e.mu.Lock()
			if e.streams[ch] {
				delete(e.streams, ch)
			}
			e.mu.Unlock()
			return
		}
	}
}

// fakePorts gives each (sandbox, network) a port number from a table the
// test writes, and reports the deletions the test announces.
type fakePorts struct {
	mu    sync.Mutex
	ports map[string]int // "sandbox/network" → port
	gone  func(int)
}

func (p *fakePorts) Find(sandboxKey string, _ int, eps []Endpoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range eps {
		eps[i].Port = p.ports[sandboxKey+"/"+eps[i].Network]
		if eps[i].Port != 0 {
			eps[i].Bridge = 1
		}
	}
	return nil
}

func (p *fakePorts) Gone(_ context.Context, f func(int)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gone = f
	return nil
}

// delete announces that port was deleted.
func (p *fakePorts) delete(port int) {
	p.mu.Lock()
	f := p.gone
	p.mu.Unlock()
	f(port)
}

// follow runs a Follower of e until the test ends; snapshots arrive on the
// returned channel.
func follow(t *testing.T, e *fakeEngine, ports *fakePorts, reconcile time.Duration) <-chan Snapshot {
	return runFollower(t, Config{Socket: e.sock, Ports: ports, Reconcile: reconcile, Log: slog.New(slog.DiscardHandler)})
}

// runFollower runs a Follower with cfg until the test ends; snapshots
// arrive on the returned channel.
func runFollower(t *testing.T, cfg Config) <-chan Snapshot {
	f, err := New(cfg)
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

// waitSnap returns the first snapshot within 3s that satisfies ok.
func waitSnap(t *testing.T, ch <-chan Snapshot, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.After(3 * time.Second)
	var last Snapshot
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s
			}
			last = s
		case <-deadline:
			t.Fatalf("no snapshot with %s within 3s; last: %+v", what, last)
		}
	}
}

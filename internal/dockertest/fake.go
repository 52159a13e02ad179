package dockertest

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"sync"
)

// FakeEngine serves the part of the Docker Engine API egressfw reads
// (version, list, inspect, events) for containers a test made by hand:
// thousands of them cost a network namespace and a veth pair each where
// a real dockerd starts processes, and a system test has no dockerd.
// Events are sent when the test says.
type FakeEngine struct {
	mu         sync.Mutex
	containers map[string]FakeContainer
	streams    map[chan []byte]bool
}

// FakeContainer is one running container as the engine describes it.
type FakeContainer struct {
	ID, Name string
	Labels   map[string]string
	Sandbox  string // a path that opens its network namespace
	Pid      int    // its first process, for a caller that cannot open Sandbox
	IP, MAC  string // of its one endpoint, on network "bench"
}

// NewFakeEngine returns an engine without containers.
func NewFakeEngine() *FakeEngine {
	return &FakeEngine{containers: map[string]FakeContainer{}, streams: map[chan []byte]bool{}}
}

// Handler serves the engine's API.
func (e *FakeEngine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"Version": "fake", "ApiVersion": "1.41"})
	})
	mux.HandleFunc("GET /containers/json", func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		out := []map[string]string{}
		for _, id := range slices.Sorted(maps.Keys(e.containers)) {
			out = append(out, map[string]string{"Id": id})
		}
		e.mu.Unlock()
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /containers/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		c, ok := e.containers[r.PathValue("id")]
		e.mu.Unlock()
		if !ok {
			http.Error(w, `{"message":"no such container"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(inspectOf(c))
	})
	mux.HandleFunc("GET /events", e.serveEvents)
	return mux
}

// inspectOf is c as GET /containers/{id}/json gives it.
func inspectOf(c FakeContainer) map[string]any {
	return map[string]any{
		"Id": c.ID, "Name": "/" + c.Name, "Config": map[string]any{"Labels": c.Labels},
		"State": map[string]any{"Running": true, "Pid": c.Pid},
		"NetworkSettings": map[string]any{"SandboxKey": c.Sandbox, "Networks": map[string]any{
			"bench": map[string]string{"NetworkID": "bench", "IPAddress": c.IP, "MacAddress": c.MAC}}},
	}
}

func (e *FakeEngine) serveEvents(w http.ResponseWriter, r *http.Request) {
	ch := make(chan []byte, 64)
	e.mu.Lock()
	e.streams[ch] = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.streams, ch)
		e.mu.Unlock()
	}()
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-ch:
			w.Write(append(ev, '\n'))
			w.(http.Flusher).Flush()
		}
	}
}

// Set makes cs the running containers, without events (a listing shows
// them).
func (e *FakeEngine) Set(cs []FakeContainer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.containers)
	for _, c := range cs {
		e.containers[c.ID] = c
	}
}

// Start adds c and sends its start event.
func (e *FakeEngine) Start(c FakeContainer) {
	e.mu.Lock()
	e.containers[c.ID] = c
	e.mu.Unlock()
	e.emit("start", c.ID)
}

// Remove deletes container id and sends its destroy event.
func (e *FakeEngine) Remove(id string) {
	e.mu.Lock()
	delete(e.containers, id)
	e.mu.Unlock()
	e.emit("destroy", id)
}

func (e *FakeEngine) emit(action, id string) {
	ev, _ := json.Marshal(map[string]any{"Type": "container", "Action": action, "Actor": map[string]any{"ID": id}})
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.streams {
		select {
		case ch <- ev:
		default:
		}
	}
}

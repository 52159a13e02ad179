package netns

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// srvEvent is one line a testsrv server printed.
type srvEvent struct {
	Ev      string   `json:"ev"`
	Local   string   `json:"local"`
	Remote  string   `json:"remote"`
	Label   string   `json:"label"`
	Host    string   `json:"host"`
	URI     string   `json:"uri"`
	TLS     bool     `json:"tls"`
	Raw     bool     `json:"raw"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Answer  []string `json:"answer"`
	UpBytes int64    `json:"up_bytes"`
	UpOK    bool     `json:"up_ok"`
	First   string   `json:"first"`
	Err     string   `json:"err"`
	In      int64    `json:"in"` // "closed": bytes read from the connection
}

// localIP is the IP the event's connection arrived at.
func (e srvEvent) localIP() string {
	h, _, err := net.SplitHostPort(e.Local)
	if err != nil {
		return e.Local
	}
	h, _, _ = strings.Cut(h, "%")
	return h
}

// server is a running testsrv serve process and the events it printed:
// the servers' own view of who reached them.
type server struct {
	name   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	mu     sync.Mutex
	events []srvEvent
	ready  chan struct{}
	done   chan struct{}
}

func startServer(name string, cmd *exec.Cmd) (*server, error) {
	s := &server{name: name, cmd: cmd, ready: make(chan struct{}), done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = &s.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start testsrv: %w", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e srvEvent
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			if e.Ev == "ready" {
				close(s.ready)
				continue
			}
			s.mu.Lock()
			s.events = append(s.events, e)
			s.mu.Unlock()
		}
		cmd.Wait()
	}()
	select {
	case <-s.ready:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("testsrv %s exited: %s", name, s.stderr.String())
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, fmt.Errorf("testsrv %s not ready after 10s: %s", name, s.stderr.String())
	}
}

// stop kills the server and waits for it.
func (s *server) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.done
}

// count returns how many events match f.
func (s *server) count(f func(srvEvent) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if f(e) {
			n++
		}
	}
	return n
}

// filter returns the events that match f.
func (s *server) filter(f func(srvEvent) bool) []srvEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []srvEvent
	for _, e := range s.events {
		if f(e) {
			out = append(out, e)
		}
	}
	return out
}

// conns counts TCP connections accepted on ip ("" for any address).
func (s *server) conns(ip string) int {
	return s.count(func(e srvEvent) bool { return e.Ev == "conn" && (ip == "" || e.localIP() == ip) })
}

// requests counts HTTP requests served on ip ("" for any address).
func (s *server) requests(ip string) int {
	return s.count(func(e srvEvent) bool { return e.Ev == "http" && (ip == "" || e.localIP() == ip) })
}

// queries counts DNS queries for name (fully qualified, lower case).
func (s *server) queries(name string) int {
	return s.count(func(e srvEvent) bool { return e.Ev == "dns" && e.Name == name })
}

// settle waits until no event has arrived for 150 ms (at most 3 s): the
// server's events come over a pipe and may arrive after the reply a
// client already read.
func (s *server) settle() {
	last := s.count(func(srvEvent) bool { return true })
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(150 * time.Millisecond)
		n := s.count(func(srvEvent) bool { return true })
		if n == last {
			return
		}
		last = n
	}
}

// settleServers settles the public and the internal servers (see settle),
// before a count that must not have moved is read.
func (tp *topo) settleServers() {
	var wg sync.WaitGroup
	wg.Go(tp.pub.settle)
	tp.internal.settle()
	wg.Wait()
}

// atLeast waits until n() reaches want (at most 3 s), then settles, so a
// count compared with want has every event the clients caused, the late
// ones and any extra.
func (s *server) atLeast(n func() int, want int) {
	for deadline := time.Now().Add(3 * time.Second); n() < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	s.settle()
}

// waitFor waits until f matches an event, up to d.
func (s *server) waitFor(f func(srvEvent) bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if s.count(f) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

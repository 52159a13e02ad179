package netns

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
)

// sockRelay passes connections to a unix socket (the Engine API) on to
// another, until cut: egressfw reads dockerd through it, so a test can
// make the API unreachable while dockerd and its containers run on.
type sockRelay struct {
	t      *testing.T
	path   string // where egressfw connects
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// relaySocket relays path to target until the test ends.
func relaySocket(t *testing.T, path, target string) *sockRelay {
	r := &sockRelay{t: t, path: path, target: target, conns: map[net.Conn]bool{}}
	r.open()
	t.Cleanup(r.cut)
	return r
}

// open listens on the relay's path (again).
func (r *sockRelay) open() {
	r.t.Helper()
	os.Remove(r.path)
	ln, err := net.Listen("unix", r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.pass(c)
		}
	}()
}

func (r *sockRelay) pass(c net.Conn) {
	up, err := net.Dial("unix", r.target)
	if err != nil {
		c.Close()
		return
	}
	if !r.track(c, up) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	for _, p := range [][2]net.Conn{{up, c}, {c, up}} {
		go func() {
			defer wg.Done()
			_, err := io.Copy(p[0], p[1])
			if err == nil || errors.Is(err, net.ErrClosed) {
				p[0].(interface{ CloseWrite() error }).CloseWrite()
			}
		}()
	}
	wg.Wait()
	c.Close()
	up.Close()
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, up)
	r.mu.Unlock()
}

// track records a relayed pair, unless the relay was cut meanwhile.
func (r *sockRelay) track(c, up net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		c.Close()
		up.Close()
		return false
	}
	r.conns[c], r.conns[up] = true, true
	return true
}

// cut stops listening and closes every relayed connection: the API is
// unreachable (the socket file is gone) until open.
func (r *sockRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

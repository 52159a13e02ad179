package h1relay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/tcptest"
)

// fakeJudge refuses every request to refused.example and records what it
// was asked.
type fakeJudge struct {
	mu         sync.Mutex
	asked      []string // the hosts of the heads Request judged
	allowedRaw []string // the raw Host values of the heads it allowed
	unreadable []error
}

func (j *fakeJudge) Request(req *httphead.Requests, buf []byte) []byte {
	head, err := req.Resolve(buf)
	if err != nil {
		return []byte("MALFORMED\n")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.asked = append(j.asked, head.Host())
	if head.Name == "refused.example" {
		return []byte("REFUSED " + head.Host() + "\n")
	}
	raw, _ := req.HostValue(buf)
	j.allowedRaw = append(j.allowedRaw, string(raw))
	return nil
}

func (j *fakeJudge) Unreadable(err error, inBody bool) []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.unreadable = append(j.unreadable, err)
	return []byte(fmt.Sprintf("UNREADABLE inBody=%v\n", inBody))
}

// serve answers every request on c with 200 and the request's path as the
// body, and records the paths in order.
func serve(c net.Conn, paths chan<- string) {
	defer close(paths)
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		paths <- req.URL.Path
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
	}
}

// startRelay starts the relay of a connection whose first request is
// first (already judged, as the caller does before the dial): client is
// the tenant's end, paths what the upstream served.
func startRelay(t *testing.T, j Judge, cfg Config, first string) (client *net.TCPConn, paths <-chan string, done <-chan error) {
	t.Helper()
	client, c := tcptest.Pair(t)
	upSrv, up := tcptest.Pair(t)
	p := make(chan string, 64)
	go serve(upSrv, p)
	if _, err := io.WriteString(client, first); err != nil {
		t.Fatal(err)
	}
	prefix := make([]byte, len(first))
	if _, err := io.ReadFull(c, prefix); err != nil {
		t.Fatal(err)
	}
	var r Conn
	if _, err := r.Init(c, prefix, cfg, j); err != nil {
		t.Fatalf("Init: %v", err)
	}
	errc := make(chan error, 1)
	go func() { _, _, err := r.Run(up); errc <- err }()
	return client, p, errc
}

func get(host, path string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
}

func collect(paths <-chan string) []string {
	var out []string
	for p := range paths {
		out = append(out, p)
	}
	return out
}

var testConfig = Config{MaxHead: 8 << 10, HeadTimeout: 300 * time.Millisecond, Idle: 5 * time.Second}

// TestJudgeAskedForLaterRequests: the relay asks its Judge about every
// request after the first, none of them twice; a refused one gets the
// Judge's answer after the response before it, and neither it nor anything
// after it reaches the upstream.
func TestJudgeAskedForLaterRequests(t *testing.T) {
	j := &fakeJudge{}
	client, paths, done := startRelay(t, j, testConfig, get("ok.example", "/1"))
	_, _ = io.WriteString(client, get("ok.example", "/2")+get("refused.example", "/3")+get("ok.example", "/4"))
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, got)
	}
	want := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/1" + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/2" + "REFUSED refused.example\n"
	if string(got) != want {
		t.Errorf("the client got %q, want %q", got, want)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if served := collect(paths); strings.Join(served, " ") != "/1 /2" {
		t.Errorf("the upstream served %q, want /1 /2", served)
	}
	if strings.Join(j.asked, " ") != "ok.example refused.example" {
		t.Errorf("the judge was asked about %q, want the second and third requests only", j.asked)
	}
}

// TestUnreadableHeadAnswered: a later head that does not come whole in
// HeadTimeout, and a malformed one, are the Judge's Unreadable (with
// ErrHeadTimeout, httphead.ErrMalformed) and get its answer; nothing of
// them reaches the upstream.
func TestUnreadableHeadAnswered(t *testing.T) {
	for _, tc := range []struct {
		name, send string
		want       error
	}{
		{"timeout", "GET /2 HTTP/1.1\r\nHost: ok.exa", ErrHeadTimeout},
		{"malformed", "GET /2 HTTP/1.1\r\nHost: ok.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", httphead.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &fakeJudge{}
			client, paths, done := startRelay(t, j, testConfig, get("ok.example", "/1"))
			_, _ = io.WriteString(client, tc.send)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(client)
			if want := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/1UNREADABLE inBody=false\n"; string(got) != want {
				t.Errorf("the client got %q, want %q", got, want)
			}
			<-done
			if served := collect(paths); strings.Join(served, " ") != "/1" {
				t.Errorf("the upstream served %q, want /1", served)
			}
			if len(j.unreadable) != 1 || !errors.Is(j.unreadable[0], tc.want) {
				t.Errorf("Unreadable was told %v, want one %v", j.unreadable, tc.want)
			}
		})
	}
}

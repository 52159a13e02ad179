package httphead

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// captureHead runs client against a listener on 127.0.0.1 and returns the
// request head it sends (through the empty line), read without the code
// under test.
func captureHead(t *testing.T, client func(ctx context.Context, port int) error) (head []byte, port uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan []byte, 1)
	go func() {
		defer close(got)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		var head []byte
		buf := make([]byte, 4096)
		for len(head) < DefaultMaxHead {
			n, err := conn.Read(buf)
			head = append(head, buf[:n]...)
			if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
				got <- head[:i+4]
				return
			}
			if err != nil {
				return
			}
		}
	}()
	clientDone := make(chan error, 1)
	port = uint16(ln.Addr().(*net.TCPAddr).Port)
	go func() { clientDone <- client(ctx, int(port)) }()
	head = <-got
	cancel()
	<-clientDone
	if head == nil {
		t.Fatal("no request head captured")
	}
	return head, port
}

func TestCapturedHTTPHeads(t *testing.T) {
	goGet := func(target string) func(*testing.T) func(context.Context, int) error {
		return func(*testing.T) func(context.Context, int) error {
			return func(ctx context.Context, port int) error {
				req, err := http.NewRequestWithContext(ctx, "GET", replacePort(target, port), nil)
				if err != nil {
					return err
				}
				tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
				}}
				defer tr.CloseIdleConnections()
				resp, err := tr.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
				return err
			}
		}
	}
	cases := []struct {
		name   string
		client func(*testing.T) func(context.Context, int) error
		want   httpWant // a port of 1 stands for the listener's port
	}{
		{"go-net-http", goGet("http://example.test:PORT/path"), httpWant{name: "example.test", port: 1, method: "GET", version: "HTTP/1.1"}},
		{"curl", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "curl", "-s", "--max-time", "10", "--resolve", "example.test:PORT:127.0.0.1", "http://example.test:PORT/")
		}, httpWant{name: "example.test", port: 1, method: "GET", version: "HTTP/1.1"}},
		{"curl-proxy-absolute-form", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "curl", "-s", "--max-time", "10", "-x", "http://127.0.0.1:PORT", "http://example.test:8080/x")
		}, httpWant{name: "example.test", port: 8080, method: "GET", version: "HTTP/1.1"}},
		{"curl-proxy-connect", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "curl", "-s", "--max-time", "10", "-p", "-x", "http://127.0.0.1:PORT", "https://example.test/")
		}, httpWant{name: "example.test", port: 443, method: "CONNECT", version: "HTTP/1.1", connect: true}},
		{"python-http.client", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "python3", "-c", `import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.putrequest("GET", "/", skip_host=True); c.putheader("Host", "Example.Test"); c.endheaders()
try: c.getresponse()
except Exception: pass`, "PORT")
		}, httpWant{name: "example.test", method: "GET", version: "HTTP/1.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head, port := captureHead(t, tc.client(t))
			if tc.want.port == 1 {
				tc.want.port = port
			}
			res, st, err := Parse(head, 0)
			if st != Done || err != nil {
				t.Fatalf("Parse(%q) = %v, %v", head, st, err)
			}
			if got := wantOf(res); got != tc.want {
				t.Errorf("Parse(%q) = %+v; want %+v", head, got, tc.want)
			}
			if res.Len != len(head) {
				t.Errorf("Len = %d; want %d", res.Len, len(head))
			}
			p := NewParser(0)
			for i := 1; i < len(head); i++ {
				if _, st, err := Parse(head[:i], 0); st != NeedMore {
					t.Fatalf("prefix of %d/%d bytes = %v, %v; want NeedMore", i, len(head), st, err)
				}
				if _, st, err := p.Parse(head[:i]); st != NeedMore {
					t.Fatalf("fed byte by byte, %d/%d bytes = %v, %v; want NeedMore", i, len(head), st, err)
				}
			}
			if fed, st, err := p.Parse(head); st != Done || !reflect.DeepEqual(fed, res) {
				t.Errorf("fed byte by byte = %+v, %v, %v; want %+v", fed, st, err, res)
			}
			if again, _, _ := Parse(append(head, "body"...), 0); !reflect.DeepEqual(again, res) {
				t.Errorf("with a body = %+v; want %+v", again, res)
			}
		})
	}
}

// execClient returns a client that runs an external program; args may
// contain PORT, replaced by the listener's port. It skips the test when the
// program is not installed.
func execClient(t *testing.T, prog string, args ...string) func(context.Context, int) error {
	t.Helper()
	path, err := exec.LookPath(prog)
	if err != nil {
		t.Skipf("%s is not installed; skipping this real-client capture", prog)
	}
	return func(ctx context.Context, port int) error {
		a := make([]string, len(args))
		for i, s := range args {
			a[i] = replacePort(s, port)
		}
		cmd := exec.CommandContext(ctx, path, a...)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil && ctx.Err() == nil && len(out) > 0 {
			return fmt.Errorf("%s: %w: %.300s", prog, err, out)
		}
		return err
	}
}

func replacePort(s string, port int) string {
	return strings.ReplaceAll(s, "PORT", strconv.Itoa(port))
}

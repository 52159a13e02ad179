package status

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve listens at dir/status.sock and serves report until the test ends.
func serve(t *testing.T, dir string, report func() Report) string {
	t.Helper()
	path := filepath.Join(dir, "status.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { Serve(ln, report, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	t.Cleanup(func() { ln.Close(); <-done })
	return path
}

func fetch(t *testing.T, path string) ([]byte, Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Fetch(ctx, path)
}

// TestSocketAnswers: Fetch gets the report Serve was given, as JSON, over a
// socket of mode 0600 in a directory Listen created 0700.
func TestSocketAnswers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "egressfw")
	want := Report{Version: "1.2.3", Health: "ok", Started: t0, Now: t0.Add(time.Hour),
		Tenants:  []Tenant{{Name: "web", Mode: "enforce", Slot: 1, Port: 15001, Open: 2, LastMinute: Counts{Connections: 9, Denied: 3}}},
		DNSCache: Cache{Hits: 3, Misses: 1}}
	path := serve(t, dir, func() Report { return want })
	raw, got, err := fetch(t, path)
	if err != nil {
		t.Fatal(err)
	}
	wantRaw, _ := json.Marshal(want)
	if strings.TrimSpace(string(raw)) != string(wantRaw) {
		t.Errorf("raw answer\n%s\nwant\n%s", raw, wantRaw)
	}
	if got.Version != "1.2.3" || len(got.Tenants) != 1 || got.Tenants[0].LastMinute.Denied != 3 || got.DNSCache.HitRatio() != 0.75 {
		t.Errorf("decoded %+v", got)
	}
	for p, mode := range map[string]os.FileMode{path: os.ModeSocket | 0o600, dir: os.ModeDir | 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, mode)
		}
	}
}

// TestSocketListen: a socket left by a process that is gone is replaced;
// one that answers, and a file that is no socket, are left alone and are
// errors.
func TestSocketListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	defer ln.Close()
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another process answers") {
		t.Errorf("over a live socket: %v, want an error saying another process answers", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v, want an error", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("the regular file was changed: %q", b)
	}
}

// TestSocketNotForOtherUsers: a local user who is not root (nobody) cannot
// connect to the socket (its mode), and when the socket is opened to
// everyone by mistake, the daemon answers that user with a refusal and no
// report (the peer's credentials). Root only: it runs a client as nobody.
func TestSocketNotForOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 for the client")
	}
	// Not t.TempDir: its parent is private, nobody could not even look.
	dir, err := os.MkdirTemp("", "egressfw-status-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := serve(t, dir, func() Report { return Report{Version: "secret-version", Tenants: []Tenant{{Name: "secret-tenant"}}} })
	asNobody := func() (string, error) {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
			"/usr/bin/python3", "-c", `import socket,sys
s=socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
b=b""
while True:
    d=s.recv(65536)
    if not d: break
    b+=d
sys.stdout.write(b.decode())`, path)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := asNobody()
	if err == nil || !strings.Contains(out, "PermissionError") {
		t.Errorf("nobody connecting to the 0600 socket: %v\n%s\nwant a permission error", err, out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	out, err = asNobody()
	if err != nil || !strings.Contains(out, "permission denied: uid 65534 is not root") {
		t.Errorf("nobody on a socket opened to everyone: %v\n%s\nwant a refusal", err, out)
	}
	if strings.Contains(out, "secret") {
		t.Errorf("nobody read the report: %s", out)
	}
	if _, r, err := fetch(t, path); err != nil || r.Version != "secret-version" {
		t.Errorf("root: %+v, %v", r, err)
	}
}

package main

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/status"
)

var statusNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sampleReport is a daemon's answer with a bit of everything.
func sampleReport() status.Report {
	at := func(d time.Duration) time.Time { return statusNow.Add(-d) }
	return status.Report{Version: "1.2.3", Config: "/etc/egressfw/egressfw.toml", Started: at(26 * time.Hour), Now: statusNow, Health: "ok",
		Tenants: []status.Tenant{
			{Name: "web", Mode: "enforce", Slot: 1, Port: 15001, Open: 12, LastMinute: status.Counts{Connections: 340, Denied: 7, Failed: 1},
				TopSince: at(14 * time.Minute), TopDenied: []status.Name{
					{Name: "bi-tool.example.com", Count: 5, Decision: "deny", Reason: "internal_address", Last: at(10 * time.Second)},
					{Name: "evil\x1b[2J.example", Count: 3, Overcount: 2, Decision: "deny", Reason: "invalid_name", Last: at(4 * time.Minute)},
					{Name: "10.20.0.10", Count: 2, Decision: "deny", Reason: "literal_not_allowed", Last: at(3 * time.Minute)},
				}},
			{Name: "audit", Mode: "report", Slot: 2, Port: 15002, LastMinute: status.Counts{Connections: 4, Reported: 4},
				TopSince: at(14 * time.Minute), TopDenied: []status.Name{
					{Name: "new.example.net", Count: 4, Decision: "would_deny", Reason: "not_allowed_domain", Last: at(time.Second)},
				}},
			{Name: "idle", Mode: "enforce", Slot: 3, Port: 15003, TopDenied: []status.Name{}},
		},
		Ruleset: status.Ruleset{LastApply: &status.Event{Time: at(time.Hour)}, Restores: 2, Failures: 1,
			LastRestore: &status.Event{Time: at(30 * time.Minute), By: "nft[1234]", What: "delete table (egressfw)"}},
		Reload:   status.Reload{Count: 3, Last: &status.Event{Time: at(time.Hour), Error: "config x:\nlimits.max_connections: must be > 0"}},
		DNSCache: status.Cache{Hits: 931, Misses: 69},
	}
}

// TestRenderStatus: the screen egressfw status prints. A name a tenant sent
// is printed quoted when it holds anything but printable ASCII, so it
// cannot drive the operator's terminal.
func TestRenderStatus(t *testing.T) {
	var b bytes.Buffer
	renderStatus(&b, sampleReport(), time.UTC)
	want := `egressfw 1.2.3, up 26h0m0s (started 2026-02-28 10:00:00 UTC), healthy
config   /etc/egressfw/egressfw.toml; last reload 11:00:00 (1h0m0s ago), FAILED: config x: limits.max_connections: must be > 0 (3 since start)
ruleset  applied 11:00:00 (1h0m0s ago), ok; restored 2 times after other programs' changes (1 attempt refused); last 11:30:00 (30m0s ago) by nft[1234] (delete table (egressfw)), ok
dns      cache hit ratio 93.1% (931 of 1000 lookups)

TENANT  MODE      PORT    OPEN  NEW/MIN  DENIED/MIN  REPORTED/MIN  FAILED/MIN
web     enforce  15001      12      340           7             0           1
audit   report   15002       0        4           0             4           0
idle    enforce  15003       0        0           0             0           0

web: most denied since 11:46:00 (14m0s ago)
  5    bi-tool.example.com    internal_address     last 11:59:50 (10s ago)
  <=3  "evil\x1b[2J.example"  invalid_name         last 11:56:00 (4m0s ago)
  2    10.20.0.10             literal_not_allowed  last 11:57:00 (3m0s ago)

audit: most denied since 11:46:00 (14m0s ago)
  4  new.example.net  not_allowed_domain (report mode: let through)  last 11:59:59 (1s ago)
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if strings.Contains(b.String(), "\x1b") {
		t.Error("an escape character reached the screen")
	}
}

// TestStatusCommand: egressfw status reads the socket the config names (or
// --socket), prints the screen, --json the daemon's answer as it came,
// --tenant one tenant; a daemon that does not answer, and a config that
// disables the socket, exit 1 saying why.
func TestStatusCommand(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "status.sock")
	ln, err := status.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go status.Serve(ln, sampleReport, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer ln.Close()
	withSocket := writeConfig(t, "[metrics]\nstatus_socket = \""+sock+"\"\n")
	tests := []struct {
		name    string
		args    []string
		code    int
		want    []string
		notWant []string
	}{
		{"the config's socket", []string{"--config", withSocket}, exitOK, []string{"egressfw 1.2.3", "bi-tool.example.com", "audit", "idle"}, nil},
		{"--socket", []string{"--config", "/nonexistent", "--socket", sock}, exitOK, []string{"egressfw 1.2.3"}, []string{"default socket"}},
		{"--json", []string{"--socket", sock, "--json"}, exitOK, []string{`{"version":"1.2.3",`, `"top_denied":[{"name":"bi-tool.example.com","count":5,`}, []string{"TENANT"}},
		{"--tenant", []string{"--socket", sock, "--tenant", "audit"}, exitOK, []string{"audit", "new.example.net"}, []string{"web", "idle"}},
		{"an unknown tenant", []string{"--socket", sock, "--tenant", "nope"}, exitFail, []string{`no tenant "nope" is running`}, nil},
		{"nobody answers", []string{"--socket", filepath.Join(dir, "gone.sock")}, exitFail, []string{"gone.sock", "is egressfw running?"}, nil},
		{"socket disabled", []string{"--config", writeConfig(t, "[metrics]\nstatus_socket = \"\"\n")}, exitFail, []string{`metrics.status_socket = ""`}, nil},
		// The exit code is the host's: an egressfw running here answers on
		// the default socket.
		{"a config that does not load: the default socket", []string{"--config", writeConfig(t, "[metrics\n")}, anyExit,
			[]string{"asking the default socket /run/egressfw/status.sock"}, nil},
		{"arguments", []string{"--socket", sock, "extra"}, exitUsage, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(append([]string{"status"}, tc.args...)...)
			if code != tc.code && tc.code != anyExit {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out+errOut, w) {
					t.Errorf("output has %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
}

// anyExit marks a case whose exit code is not asserted.
const anyExit = -1

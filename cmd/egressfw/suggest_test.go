package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/dnstest"
)

// recorded is a log of a test/netns run: tenant "a" in report mode, a
// reload, then enforce mode.
const recorded = "../../internal/suggest/testdata/netns-run.jsonl"

// TestSuggestThenExplain: the fragment suggest prints from a report-mode
// log, pasted into the tenant's table with mode = "enforce", passes
// check-config, and egressfw's own policy (explain, with a real DNS server)
// allows what the tenant did and refuses the rest.
func TestSuggestThenExplain(t *testing.T) {
	dns := dnstest.New(t)
	for _, n := range []string{"example.com", "www.example.com", "api.example.com", "cdn.example.com", "solo.example.org", "new.example.net"} {
		dns.Set(n, "198.51.100.10")
	}
	dns.Set("svc.example.com", "10.20.0.20")
	dns.Set("bi-tool.example.com", "10.20.0.10")
	base := fmt.Sprintf("[dns]\nservers = [%q]\n[policy]\npublic_cidrs = [\"198.51.100.0/24\"]\n[[tenant]]\nname = \"a\"\ncgroups = [\"egressfw.slice/a\"]\n", dns.Addr)
	code, out, errOut := run("suggest", "--from", recorded, "--config", writeConfig(t, base+"mode = \"report\"\n"), "--tenant", "a")
	if code != exitOK {
		t.Fatalf("suggest: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "16 connection lines used") || !strings.Contains(errOut, "4 lines of other messages") {
		t.Errorf("suggest's count on stderr: %s", errOut)
	}
	cfg := writeConfig(t, base+"mode = \"enforce\"\n"+out)
	if code, o, e := run("check-config", "--config", cfg); code != exitOK {
		t.Fatalf("check-config of the pasted fragment: exit %d\n%s%s\n%s", code, o, e, out)
	}
	tests := []struct {
		target string
		code   int
		want   string
	}{
		{"https://www.example.com/", exitOK, "ALLOW"},
		{"http://api.example.com/", exitOK, "ALLOW"},
		{"https://cdn.example.com/", exitOK, "ALLOW"},
		{"http://example.com/", exitOK, "ALLOW"},
		{"http://solo.example.org/", exitOK, "ALLOW"},
		{"http://svc.example.com/", exitOK, "ALLOW"},
		{"https://svc.example.com/", exitFail, "internal_port"},
		{"http://new.example.net/", exitFail, "not_allowed_domain"},
		{"http://bi-tool.example.com/", exitFail, "internal_address"},
		{"http://198.51.100.10/", exitFail, "literal_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			code, o, e := run("explain", "--config", cfg, "--tenant", "a", tc.target)
			if code != tc.code || !strings.Contains(o+e, tc.want) {
				t.Errorf("explain: exit %d, want %d with %q\n%s%s", code, tc.code, tc.want, o, e)
			}
		})
	}
}

func TestSuggestCommand(t *testing.T) {
	data, err := os.ReadFile(recorded)
	if err != nil {
		t.Fatal(err)
	}
	noTenant := writeConfig(t, "[listener]\nport = 15001\n")
	tests := []struct {
		name  string
		args  []string
		stdin string
		path  string // PATH, when set
		code  int
		want  string
	}{
		{"stdin", []string{"--from", "-", "--config", noTenant}, string(data), "", exitOK, `"*.example.com",`},
		{"diff", []string{"--diff", "--from", recorded, "--config", noTenant}, "", "", exitOK, `+"*.example.com"`},
		{"one tenant only", []string{"--tenant", "zz", "--from", recorded, "--config", noTenant}, "", "", exitFail, "16 of other tenants left out"},
		{"--since leaves out older lines", []string{"--since", "1m", "--from", recorded, "--config", noTenant}, "", "", exitFail, "16 from before --since"},
		{"no connection lines", []string{"--from", "-", "--config", noTenant}, "hello\n", "", exitFail, "1 garbage lines"},
		{"journalctl missing", []string{"--config", noTenant}, "", t.TempDir(), exitUsage, "journalctl not found"},
		{"--diff needs a config", []string{"--diff", "--from", recorded, "--config", "/nonexistent/egressfw.toml"}, "", "", exitUsage, "--diff needs the current config"},
		{"an explicit config must load", []string{"--from", recorded, "--config", "/nonexistent/egressfw.toml"}, "", "", exitUsage, "no such file"},
		{"bad --since", []string{"--since", "yesterday", "--from", recorded}, "", "", exitUsage, `"yesterday" is not a positive span`},
		{"--collapse 1", []string{"--collapse", "1", "--from", recorded}, "", "", exitUsage, "Usage: egressfw suggest"},
		{"missing file", []string{"--from", "/nonexistent.log", "--config", noTenant}, "", "", exitUsage, "--from: open /nonexistent.log"},
		{"help", []string{"--help"}, "", "", exitOK, "Usage: egressfw suggest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdin = strings.NewReader(tc.stdin)
			defer func() { stdin = os.Stdin }()
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			code, out, errOut := run(append([]string{"suggest"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

func TestParseSpan(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"24h", 24 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"0s", 0, false},
		{"-1h", 0, false},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"99999d", 0, false},
	}
	for _, tc := range tests {
		got, err := parseSpan(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSpan(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

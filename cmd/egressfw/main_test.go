package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/dnstest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "egressfw.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = dispatch(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCheckConfig(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode int
		want     string
	}{
		{"shipped example", "", exitOK, "valid (1 tenant)"},
		{"unknown key named", "[listener]\nport = 15001\nlisten_port = 1\n", exitFail, `unknown key "listener.listen_port"`},
		{"unknown tenant key names tenant", "[[tenant]]\nname = \"web\"\nuids = [1]\nallow = [\"*\"]\n", exitFail, `tenant "web": unknown key "allow"`},
		{"bad cidr", "[policy]\ninternal_cidrs = [\"10.0.0.0/8\", \"300.0.0.0/8\"]\n", exitFail, "policy.internal_cidrs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "../../configs/egressfw.toml"
			if tc.body != "" {
				path = writeConfig(t, tc.body)
			}
			code, out, errOut := run("check-config", "--config", path)
			if code != tc.wantCode || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant output containing %q", code, tc.wantCode, out, errOut, tc.want)
			}
		})
	}
}

func TestExplainWithRealDNS(t *testing.T) {
	dns := dnstest.New(t)
	dns.Set("www.example.com", "198.51.100.10", "2001:db8::10")
	dns.Set("bi-tool.example.com", "10.20.0.10")
	dns.Set("mixed.example.com", "198.51.100.11", "10.20.0.11")
	dns.Set("wiki.example.com", "10.20.0.20")
	dns.Set("wire.example.com", "168.63.129.16")
	dns.Set("nat64.example.com", "2001:db8:64::a14:a")
	dns.SetCNAME("www.tracked.example", "t.blocked.example")
	dns.Set("t.blocked.example", "198.51.100.10")
	cfg := writeConfig(t, fmt.Sprintf(`
[dns]
servers = [%q]
[policy]
public_cidrs = ["198.51.100.0/24", "2001:db8::/32"]
nat64_prefixes = ["2001:db8:64::/96"]
[[tenant]]
name = "web"
uids = [1000]
deny_domains = ["*.blocked.example"]
  [[tenant.allow_internal]]
  host = "wiki.example.com"
  ports = [443]
`, dns.Addr))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"public name allowed", []string{"https://www.example.com/"}, exitOK,
			[]string{"ALLOW", "198.51.100.10, 2001:db8::10", "would dial:  198.51.100.10:443"}},
		{"split-horizon internal denied", []string{"http://bi-tool.example.com/"}, exitFail,
			[]string{"DENY", "internal_address", "10.20.0.10", "private-use"}},
		{"host:port form over http", []string{"www.example.com:80", "--dst", "198.51.100.10"}, exitOK, []string{"ALLOW"}},
		{"mixed public and internal", []string{"https://mixed.example.com/"}, exitFail, []string{"DENY", "10.20.0.11"}},
		{"sni does not match destination", []string{"--dst", "203.0.113.99", "https://www.example.com/"}, exitOK,
			[]string{"destination: 203.0.113.99:443", "would dial:  198.51.100.10:443"}},
		{"allowed internal service on its port", []string{"https://wiki.example.com/"}, exitOK, []string{"ALLOW"}},
		{"allowed internal service other port", []string{"http://wiki.example.com/"}, exitFail, []string{"DENY"}},
		{"deny list never resolved", []string{"https://a.blocked.example/"}, exitFail, []string{"denied_domain", "resolved:    -"}},
		{"nxdomain", []string{"https://nope.example.com/"}, exitFail, []string{"dns_nxdomain"}},
		{"metadata literal", []string{"http://169.254.169.254/latest/meta-data/"}, exitFail, []string{"link-local"}},
		{"Azure WireServer literal", []string{"http://168.63.129.16/machine?comp=goalstate"}, exitFail,
			[]string{"DENY", "internal_address", "168.63.129.16 is Azure WireServer, a cloud platform endpoint"}},
		{"name resolving to the WireServer", []string{"http://wire.example.com/"}, exitFail,
			[]string{"DENY", "internal_address", "168.63.129.16, which is Azure WireServer"}},
		{"literal in the site's NAT64 prefix", []string{"http://[2001:db8:64::a14:a]/"}, exitFail,
			[]string{"DENY", "internal_address", "2001:db8:64::a14:a embeds 10.20.0.10 (nat64_prefixes 2001:db8:64::/96), private-use"}},
		{"name resolving into the site's NAT64 prefix", []string{"http://nat64.example.com/"}, exitFail,
			[]string{"DENY", "internal_address", "resolves to 2001:db8:64::a14:a, which embeds 10.20.0.10"}},
		{"public address behind the site's NAT64", []string{"http://[2001:db8:64::c633:640a]/"}, exitOK, []string{"ALLOW"}},
		{"CNAME chain through a deny-listed name", []string{"http://www.tracked.example/"}, exitFail,
			[]string{"DENY", "denied_domain", "cname:       t.blocked.example", `alias (CNAME) of "t.blocked.example"`}},
		{"inet_aton literal", []string{"http://2130706433/"}, exitFail, []string{"127.0.0.1", "loopback"}},
		{"unknown tenant", []string{"--tenant", "nobody", "https://www.example.com/"}, exitUsage, []string{`no tenant "nobody"`}},
		{"bad target", []string{"ftp://x/"}, exitUsage, []string{"want http or https"}},
		{"host without a port", []string{"www.example.com"}, exitUsage, []string{"want a URL or HOST:PORT"}},
		{"port out of range", []string{"www.example.com:70000"}, exitUsage, []string{"port 70000 is out of range"}},
		{"IPv6 literal as HOST:PORT", []string{"[2001:db8:64::a14:a]:80"}, exitFail, []string{"DENY", "internal_address"}},
		{"IPv6 literal without brackets", []string{"2001:db8::10:443"}, exitUsage, []string{"IPv6 literal without brackets"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"explain", "--config", cfg, "--tenant", "web"}, tc.args...)
			// flags must precede the target: move it last
			code, out, errOut := run(reorder(args)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
	if dns.Queries() == 0 {
		t.Fatal("the DNS server was never asked")
	}
}

// reorder puts the one non-flag argument (the target) after the flags.
func reorder(args []string) []string {
	var flags []string
	var target string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "--") {
			flags = append(flags, a, args[i+1])
			i++
			continue
		}
		target = a
	}
	return append(append([]string{args[0]}, flags...), target)
}

func TestHelpExitsZero(t *testing.T) {
	for _, c := range []string{"run", "check-config", "explain", "rules", "cleanup", "version"} {
		code, _, errOut := run(c, "--help")
		if code != exitOK || !strings.Contains(errOut, "Usage: egressfw "+c) {
			t.Errorf("%s --help: exit %d\n%s", c, code, errOut)
		}
	}
	if code, _, _ := run("frobnicate"); code != exitUsage {
		t.Errorf("unknown command: exit %d, want %d", code, exitUsage)
	}
}

package suggest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
)

// reportConfig is the config of the test/netns run in testdata: tenant "a"
// in report mode, allowed everything.
const reportConfig = `
[[tenant]]
name = "a"
cgroups = ["egressfw.slice/a"]
mode = "report"
  [[tenant.allow_direct]]
  cidr = "10.20.0.53/32"
  ports = [53]
`

// splice puts a fragment into a [[tenant]] table named name the way the
// operator is told to: after the tenant's keys, before its other
// [[tenant.*]] tables.
func splice(name, fragment string) string {
	return fmt.Sprintf(`
[[tenant]]
name = %q
cgroups = ["egressfw.slice/%s"]
mode = "enforce"
%s
  [[tenant.allow_direct]]
  cidr = "10.20.0.53/32"
  ports = [53]
`, name, name, fragment)
}

func mustConfig(t *testing.T, toml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatalf("config does not load: %v\n%s", err, toml)
	}
	return cfg
}

func readFile(t *testing.T, name string, f Filter) *Log {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog()
	if _, err := Read(bytes.NewReader(b), f, l); err != nil {
		t.Fatal(err)
	}
	return l
}

func fragment(t *testing.T, p *Plan) string {
	t.Helper()
	var b strings.Builder
	if err := p.WriteFragment(&b, "test.toml"); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestFragmentLoads: the fragment suggested from the recorded test/netns
// log, pasted into the tenant's table, loads (config.Parse, which is what
// check-config runs), and its allow list is what the tenant was seen using.
func TestFragmentLoads(t *testing.T) {
	l := readFile(t, "netns-run.jsonl", Filter{})
	cur := mustConfig(t, reportConfig)
	p := NewPlan("a", l.Tenants["a"], &cur.Tenants[0], Options{Collapse: 2})
	frag := fragment(t, p)
	cfg := mustConfig(t, splice("a", frag))
	got := cfg.Tenants[0]
	if want := []string{"example.com", "*.example.com", "solo.example.org"}; !slices.Equal(got.AllowDomains, want) {
		t.Errorf("allow_domains %q, want %q\n%s", got.AllowDomains, want, frag)
	}
	wantInternal := []config.AllowInternal{{Host: "svc.example.com", Ports: []uint16{80}}}
	if fmt.Sprint(got.AllowInternal) != fmt.Sprint(wantInternal) {
		t.Errorf("allow_internal %+v, want %+v", got.AllowInternal, wantInternal)
	}
	for n := range l.Tenants["a"].Names {
		if !matches(got.AllowDomains, n) {
			t.Errorf("%s was used but the suggested list does not allow it", n)
		}
	}
	for _, n := range []string{"new.example.net", "example.org", "www.example.net"} {
		if matches(got.AllowDomains, n) {
			t.Errorf("%s was never seen but the suggested list allows it", n)
		}
	}
	for _, w := range []string{
		"3 names (api, cdn, www), 6 connections",
		"198.51.100.10:80: allowed, 1 connection",
		"198.51.100.10:80: literal_not_allowed",
		"new.example.net:80: not_allowed_domain",
		"bi-tool.example.com:80: internal_address",
		`REVIEW: report mode let this through (an internal address resolving to 10.20.0.20)`,
	} {
		if !strings.Contains(frag, w) {
			t.Errorf("fragment lacks %q:\n%s", w, frag)
		}
	}
}

// TestHostileLogCannotInjectConfig: names and tenants in the log come from
// tenants' requests (a SNI, a Host header) or from a file anyone may have
// edited. Whatever they hold, the fragment loads, has exactly the keys
// suggest writes, and lists only normalised names: no quote, newline or
// bracket in the log reaches the TOML.
func TestHostileLogCannotInjectConfig(t *testing.T) {
	hostile := []string{
		"evil.example.com\"]\n[[tenant]]\nname = \"x",
		"evil.example.com\"]\nallow_internal = [{cidr = \"0.0.0.0/0\"}]\n#",
		"x.example.com\n  [[tenant.allow_internal]]\n  cidr = \"10.0.0.0/8\"",
		"a.example.com\r\n",
		"a.example.com\u2028b",
		"\x00\x1b[31m.example.com",
		"a]b.example.com",
		"#.example.com",
		"a'b.example.com",
	}
	var lines []string
	for i, n := range hostile {
		for _, dec := range []string{"allow", "deny", "would_deny", "error"} {
			for _, reason := range []string{"allowed", "not_allowed_domain", "internal_address", "x\"\n]"} {
				rec := map[string]any{"msg": "connection", "tenant": "a", "name": n, "decision": dec, "reason": reason,
					"orig_dst": fmt.Sprintf("10.0.0.%d:80", i+1), "resolved": "10.0.0.1\n]", "proto": "http\n"}
				lines = append(lines, jsonLine(t, rec))
			}
		}
	}
	lines = append(lines, jsonLine(t, map[string]any{"msg": "connection", "tenant": "a\"]\n", "name": "ok.example.com", "decision": "allow"}))
	lines = append(lines, jsonLine(t, map[string]any{"msg": "connection", "tenant": "a", "name": "ok.example.com", "decision": "allow"}))
	l := NewLog()
	if _, err := Read(strings.NewReader(strings.Join(lines, "\n")), Filter{}, l); err != nil {
		t.Fatal(err)
	}
	if len(l.Tenants) != 1 {
		t.Fatalf("tenants %v, want only a", l.Tenants)
	}
	for _, o := range []Options{{Collapse: 2}, {Collapse: 0}} {
		frag := fragment(t, NewPlan("a", l.Tenants["a"], nil, o))
		cfg := mustConfig(t, splice("a", frag))
		if len(cfg.Tenants) != 1 {
			t.Fatalf("%d tenants after pasting, want 1:\n%s", len(cfg.Tenants), frag)
		}
		got := cfg.Tenants[0]
		for _, d := range got.AllowDomains {
			if !safePattern(d) || strings.Contains(d, "evil") || strings.Contains(d, "]") {
				t.Errorf("allow_domains has %q from a hostile name", d)
			}
		}
		if len(got.AllowInternal) != 0 {
			t.Errorf("allow_internal %+v from hostile names", got.AllowInternal)
		}
		for _, line := range strings.Split(frag, "\n") {
			trimmed := strings.TrimSpace(line)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") || trimmed == "allow_domains = [" || trimmed == "]" ||
				strings.HasPrefix(trimmed, `"`) {
				continue
			}
			t.Errorf("unexpected TOML line %q", line)
		}
	}
}

func jsonLine(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPlanAgainstConfig: an enforce-mode tenant with a config. Current
// entries used in the window stay (an allow_internal host covers its name,
// which is then not repeated in allow_domains); those not used are listed
// as candidates to drop; a wildcard that would admit a name enforce mode
// refused is not suggested.
func TestPlanAgainstConfig(t *testing.T) {
	cur := mustConfig(t, `
[[tenant]]
name = "web"
uids = [1000]
allow_domains = ["www.example.com", "api.example.com", "old.example.com", "*.cdn.example.net"]
  [[tenant.allow_internal]]
  host = "wiki.corp.example"
  ports = [443]
  [[tenant.allow_internal]]
  cidr = "10.9.0.0/16"
  ports = [80]
  [[tenant.allow_internal]]
  cidr = "10.20.0.0/16"
`)
	log := strings.Join([]string{
		`{"time":"2026-11-30T01:00:00Z","msg":"connection","tenant":"web","name":"www.example.com","decision":"allow","mode":"enforce","orig_dst":"198.51.100.10:443","dialed":"198.51.100.10:443"}`,
		`{"time":"2026-11-30T02:00:00Z","msg":"connection","tenant":"web","name":"api.example.com","decision":"allow","mode":"enforce","orig_dst":"198.51.100.10:443","dialed":"198.51.100.10:443"}`,
		`{"time":"2026-11-30T03:00:00Z","msg":"connection","tenant":"web","name":"admin.example.com","decision":"deny","mode":"enforce","reason":"not_allowed_domain","orig_dst":"198.51.100.10:443"}`,
		`{"time":"2026-11-30T04:00:00Z","msg":"connection","tenant":"web","name":"wiki.corp.example","decision":"allow","mode":"enforce","orig_dst":"10.30.0.5:443","dialed":"10.30.0.5:443"}`,
		`{"time":"2026-11-30T05:00:00Z","msg":"connection","tenant":"web","name":"bi.corp.example","decision":"allow","mode":"enforce","orig_dst":"10.20.1.1:80","dialed":"10.20.1.1:80"}`,
		`{"time":"2026-11-30T06:00:00Z","msg":"connection","tenant":"web","name":"nope.example.com","decision":"deny","mode":"enforce","reason":"dns_nxdomain","orig_dst":"198.51.100.10:80"}`,
	}, "\n")
	l := NewLog()
	if _, err := Read(strings.NewReader(log), Filter{}, l); err != nil {
		t.Fatal(err)
	}
	p := NewPlan("web", l.Tenants["web"], &cur.Tenants[0], Options{Collapse: 2})
	var doms []string
	for _, e := range p.Domains {
		doms = append(doms, e.Pattern)
	}
	if want := []string{"bi.corp.example", "api.example.com", "www.example.com"}; !slices.Equal(doms, want) {
		t.Errorf("domains %q, want %q (no *.example.com: admin.example.com was refused; wiki is covered by its allow_internal host)", doms, want)
	}
	if len(p.Kept) != 1 || p.Kept[0].Wildcard != "*.example.com" || !slices.Equal(p.Kept[0].Because, []string{"admin.example.com"}) {
		t.Errorf("kept %+v, want *.example.com because of admin.example.com", p.Kept)
	}
	if want := []string{"old.example.com", "*.cdn.example.net"}; !slices.Equal(p.Unused, want) {
		t.Errorf("unused %q, want %q", p.Unused, want)
	}
	var kept, unused []string
	for _, in := range p.Intern {
		kept = append(kept, internalLine(in))
	}
	for _, in := range p.UnusedI {
		unused = append(unused, internalLine(in))
	}
	if want := []string{`host = "wiki.corp.example", ports = [443]`, `cidr = "10.20.0.0/16"`}; !slices.Equal(kept, want) {
		t.Errorf("allow_internal kept %q, want %q", kept, want)
	}
	if want := []string{`cidr = "10.9.0.0/16", ports = [80]`}; !slices.Equal(unused, want) {
		t.Errorf("allow_internal unused %q, want %q", unused, want)
	}
	frag := fragment(t, p)
	got := mustConfig(t, splice("web", frag)).Tenants[0]
	if !slices.Equal(got.AllowDomains, doms) || len(got.AllowInternal) != 2 {
		t.Errorf("pasted: allow_domains %q, allow_internal %+v\n%s", got.AllowDomains, got.AllowInternal, frag)
	}
	for _, w := range []string{`Not collapsed to "*.example.com": egressfw refused admin.example.com`,
		`allow_domains "old.example.com"`, `allow_internal cidr = "10.9.0.0/16", ports = [80]`,
		"nope.example.com:80: dns_nxdomain", "in use: 1 connection"} {
		if !strings.Contains(frag, w) {
			t.Errorf("fragment lacks %q:\n%s", w, frag)
		}
	}
}

// TestNoConnections: a tenant of the config without connections gets
// comments only, no allow_domains that would change its table.
func TestNoConnections(t *testing.T) {
	cur := mustConfig(t, "[[tenant]]\nname = \"quiet\"\nuids = [7]\nallow_domains = [\"*.example.com\"]\n")
	frag := fragment(t, NewPlan("quiet", nil, &cur.Tenants[0], Options{Collapse: 2}))
	if strings.Contains(frag, "allow_domains =") || !strings.Contains(frag, "No connections in the window") ||
		!strings.Contains(frag, `["*.example.com"] matched no connection`) {
		t.Errorf("fragment:\n%s", frag)
	}
	mustConfig(t, splice("quiet", frag))
}

// TestInternalCandidatePorts: an allow_internal candidate lists only the
// intercepted ports it was seen on. A destination without a logged port,
// or on a port the config no longer intercepts, is listed, not suggested:
// an entry without ports would open every intercepted port.
func TestInternalCandidatePorts(t *testing.T) {
	log := strings.Join([]string{
		`{"tenant":"a","name":"svc.corp.example","decision":"would_deny","reason":"internal_address","orig_dst":"10.0.0.5:8080"}`,
		`{"tenant":"a","name":"svc.corp.example","decision":"would_deny","reason":"internal_port","orig_dst":"10.0.0.5:443"}`,
		`{"tenant":"a","name":"old.corp.example","decision":"would_deny","reason":"internal_address"}`,
	}, "\n")
	l := NewLog()
	if _, err := Read(strings.NewReader(log), Filter{}, l); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		intercept []uint16
		want      []string
		noPort    int
	}{
		{"default intercept ports", nil, []string{`host = "svc.corp.example", ports = [443]`}, 2},
		{"8080 intercepted", []uint16{80, 443, 8080}, []string{`host = "svc.corp.example", ports = [443, 8080]`}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPlan("a", l.Tenants["a"], nil, Options{Collapse: 2, InterceptPorts: tc.intercept})
			var got []string
			for _, in := range p.Intern {
				got = append(got, internalLine(in))
			}
			if !slices.Equal(got, tc.want) || len(p.NoPort) != tc.noPort {
				t.Errorf("allow_internal %q (%d not suggested), want %q (%d)", got, len(p.NoPort), tc.want, tc.noPort)
			}
			frag := fragment(t, p)
			if !strings.Contains(frag, "old.corp.example: internal_address") {
				t.Errorf("the destination without a port is not listed:\n%s", frag)
			}
		})
	}
}

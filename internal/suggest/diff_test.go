package suggest

import (
	"strings"
	"testing"
)

// TestDiff: --diff shows the entries the suggestion drops (-), adds (+)
// and keeps ( ) for allow_domains and allow_internal.
func TestDiff(t *testing.T) {
	cur := mustConfig(t, `
[[tenant]]
name = "a"
uids = [1]
mode = "report"
allow_domains = ["*", "www.example.com"]
  [[tenant.allow_internal]]
  cidr = "10.9.0.0/16"
[[tenant]]
name = "idle"
uids = [2]
`)
	l := readFile(t, "netns-run.jsonl", Filter{})
	var b strings.Builder
	for i, name := range []string{"a", "idle"} {
		if err := NewPlan(name, l.Tenants[name], &cur.Tenants[i], Options{Collapse: 2}).WriteDiff(&b, "egressfw.toml"); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		`--- egressfw.toml  tenant "a"`,
		`+++ suggested  tenant "a", 16 connections from 2026-11-30T22:39:05Z to 2026-11-30T22:39:06Z`,
		`@@ allow_domains @@`,
		`-"*"  # used in the window; replaced by the entries below`,
		`-"www.example.com"  # used in the window; replaced by the entries below`,
		`+"example.com"  # 2 connections, last 2026-11-30T22:39:05Z`,
		`+"*.example.com"  # 3 names (api, cdn, www), 6 connections, last 2026-11-30T22:39:05Z`,
		`+"solo.example.org"  # 2 connections, last 2026-11-30T22:39:05Z`,
		`@@ allow_internal @@`,
		`-cidr = "10.9.0.0/16"  # not used in the window`,
		`+host = "svc.example.com", ports = [80]  # REVIEW: report mode let this through`,
		`# 4 added, 3 removed, 0 kept; 1 IP-literal destinations, 3 denied (see the fragment without --diff).`,
		`--- egressfw.toml  tenant "idle"`,
		`+++ suggested  tenant "idle": no connections in the window, no change suggested`,
	}
	out := b.String()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("diff lacks %q (in this order):\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}

// TestDiffKept: an entry the suggestion keeps is marked with a space.
func TestDiffKept(t *testing.T) {
	cur := mustConfig(t, "[[tenant]]\nname = \"a\"\nuids = [1]\nallow_domains = [\"example.com\", \"*.example.com\"]\n")
	l := readFile(t, "netns-run.jsonl", Filter{})
	var b strings.Builder
	if err := NewPlan("a", l.Tenants["a"], &cur.Tenants[0], Options{Collapse: 2}).WriteDiff(&b, "x"); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"\n \"example.com\"  #", "\n \"*.example.com\"  #", "\n+\"solo.example.org\"  #", "2 added, 0 removed, 2 kept"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("diff lacks %q:\n%s", w, b.String())
		}
	}
}

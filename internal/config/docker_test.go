package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const dockerOn = "[docker]\nsocket = \"/run/docker.sock\"\n"

// labelled is a [[tenant]] table named name with docker_labels labels (an
// inline TOML table) and extra lines.
func labelled(name, labels, extra string) string {
	return fmt.Sprintf("[[tenant]]\nname = %q\ndocker_labels = %s\n%s", name, labels, extra)
}

func TestDockerLabelsParse(t *testing.T) {
	cfg, err := Parse([]byte(dockerOn+labelled("trusted", `{ "egressfw.tenant" = "trusted", "com.example.team" = "" }`, "")+
		`[[tenant]]
name = "containers"
interfaces = ["docker0"]
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	tr, plain := &cfg.Tenants[0], &cfg.Tenants[1]
	if want := map[string]string{"egressfw.tenant": "trusted", "com.example.team": ""}; !reflect.DeepEqual(tr.DockerLabels, want) {
		t.Fatalf("docker_labels = %v, want %v", tr.DockerLabels, want)
	}
	if !tr.Labelled() || plain.Labelled() {
		t.Errorf("Labelled: trusted %v, containers %v", tr.Labelled(), plain.Labelled())
	}
	if cfg.Docker.Reconcile.String() != "30s" || cfg.Firewall.ContainerMarkMask != 0xff || cfg.Firewall.ContainerCtMask != 0xff0000 {
		t.Errorf("defaults: %+v, masks %#x %#x", cfg.Docker, cfg.Firewall.ContainerMarkMask, cfg.Firewall.ContainerCtMask)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"exactly the labels", map[string]string{"egressfw.tenant": "trusted", "com.example.team": ""}, true},
		{"more labels", map[string]string{"egressfw.tenant": "trusted", "com.example.team": "", "x": "y"}, true},
		{"one missing", map[string]string{"egressfw.tenant": "trusted"}, false},
		{"another value", map[string]string{"egressfw.tenant": "trusted2", "com.example.team": ""}, false},
		{"none", nil, false},
	} {
		if got := tr.MatchesLabels(tc.labels); got != tc.want {
			t.Errorf("%s: MatchesLabels = %v, want %v", tc.name, got, tc.want)
		}
	}
	if plain.MatchesLabels(map[string]string{"egressfw.tenant": "trusted"}) {
		t.Error("a tenant without docker_labels matches a container")
	}
}

func TestDockerErrors(t *testing.T) {
	many := dockerOn
	for i := range 256 {
		many += fmt.Sprintf("[[tenant]]\nname = \"u%d\"\nuids = [%d]\n", i, 1000+i)
	}
	for _, tc := range []struct {
		name, toml string
		want       []string
	}{
		{"labels without a socket", labelled("a", `{ "x" = "y" }`, ""),
			[]string{`tenant "a".docker_labels: needs docker.socket`}},
		{"empty labels", dockerOn + labelled("a", `{}`, ""), []string{`tenant "a".docker_labels: empty: it would match every container`}},
		{"empty key", dockerOn + labelled("a", `{ "" = "y" }`, ""), []string{`tenant "a".docker_labels: label "" = "y": want a non-empty key`}},
		{"control character", dockerOn + labelled("a", `{ "x" = "y\n" }`, ""), []string{`tenant "a".docker_labels: label "x" = "y\n"`}},
		{"same label set", dockerOn + labelled("a", `{ "x" = "1", "y" = "2" }`, "") + labelled("b", `{ "y" = "2", "x" = "1" }`, ""),
			[]string{`tenant "b".docker_labels: the same labels as tenant "a": a container with them would match both and get neither`}},
		{"dotted key unquoted", dockerOn + "[[tenant]]\nname = \"a\"\ndocker_labels = { egressfw.tenant = \"a\" }\n",
			[]string{"tenant[0]", "docker_labels"}},
		{"relative socket", "[docker]\nsocket = \"run/docker.sock\"\n", []string{`docker.socket: "run/docker.sock" must be a clean absolute path`}},
		{"reconcile too short", "[docker]\nreconcile = \"100ms\"\n", []string{"docker.reconcile: 100ms is out of range [1s, 24h]"}},
		{"mark mask not contiguous", dockerOn + "[firewall]\ncontainer_mark_mask = 0x0f0f\n", []string{"firewall.container_mark_mask: 0xf0f must be one nonzero run of bits"}},
		{"mark mask overlaps", dockerOn + "[firewall]\ncontainer_mark_mask = 0x3f00\n", []string{"firewall.container_mark_mask: 0x3f00 overlaps mark_mask 0x3000"}},
		{"ct mask overlaps", dockerOn + "[firewall]\ncontainer_ct_mask = 0xff0\n", []string{"firewall.container_ct_mask: 0xff0 overlaps ctmark_mask 0xfff"}},
		{"ct mask narrower", dockerOn + "[firewall]\ncontainer_ct_mask = 0xf0000\n", []string{"firewall.container_ct_mask: 0xf0000 must be as wide as container_mark_mask 0xff"}},
		{"ct mask zero", dockerOn + "[firewall]\ncontainer_ct_mask = 0\n", []string{"firewall.container_ct_mask: 0x0 must be one nonzero run of bits"}},
		{"labelled slot past the mask", many + labelled("late", `{ "x" = "y" }`, ""),
			[]string{`tenant "late".docker_labels: a labelled tenant's slot (here 257, its place in the config) must fit firewall.container_mark_mask 0xff (at most 255)`}},
		{"labelled slot past a narrow mask", dockerOn + "[firewall]\ncontainer_mark_mask = 0x3\ncontainer_ct_mask = 0x30000\n" +
			labelled("a", `{ "x" = "1" }`, "") + labelled("b", `{ "x" = "2" }`, "") + labelled("c", `{ "x" = "3" }`, "") + labelled("d", `{ "x" = "4" }`, ""),
			[]string{`tenant "d".docker_labels: a labelled tenant's slot (here 4`, "container_mark_mask 0x3 (at most 3)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.toml), "test.toml")
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.toml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestDockerAccepts(t *testing.T) {
	for _, tc := range []struct{ name, toml string }{
		{"labels only", dockerOn + labelled("a", `{ "x" = "y" }`, "")},
		{"labels and interfaces", dockerOn + labelled("a", `{ "x" = "y" }`, `interfaces = ["docker0"]`+"\n")},
		{"socket, no labelled tenant", dockerOn + base},
		// Without a socket the container marks are not used, so a config
		// whose mark_mask covers their defaults keeps loading.
		{"marks unused without a socket", "[firewall]\nmark_mask = 0xff\nintercept_mark = 0x2\nbypass_mark = 0x1\n" + base},
		{"other masks", dockerOn + "[firewall]\ncontainer_mark_mask = 0xf0000000\ncontainer_ct_mask = 0xf000\n" + labelled("a", `{ "x" = "y" }`, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.toml), "test.toml"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDockerLabelSubsetWarns(t *testing.T) {
	cfg, err := Parse([]byte(dockerOn+labelled("broad", `{ "team" = "a" }`, "")+labelled("narrow", `{ "team" = "a", "tier" = "web" }`, "")+
		labelled("other", `{ "team" = "b", "tier" = "web" }`, "")+base), "t")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`tenant "broad": docker_labels are a subset of tenant "narrow"'s: a container with all of "narrow"'s labels matches both and gets neither tenant`}
	if got := cfg.Warnings(); !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings() = %q, want %q", got, want)
	}
}

package main

import (
	"strings"
	"testing"
)

// TestCheckConfigDockerLabels: check-config refuses two tenants with the
// same docker_labels, naming both, and warns, without failing, when one
// tenant's labels are a subset of another's.
func TestCheckConfigDockerLabels(t *testing.T) {
	docker := "[docker]\nsocket = \"/run/docker.sock\"\n"
	tenant := func(name, labels string) string {
		return "[[tenant]]\nname = \"" + name + "\"\ndocker_labels = " + labels + "\n"
	}
	tests := []struct {
		name     string
		body     string
		wantCode int
		want     []string
	}{
		{"same labels", docker + tenant("a", `{ "team" = "a" }`) + tenant("b", `{ "team" = "a" }`), exitFail,
			[]string{`tenant "b".docker_labels: the same labels as tenant "a"`}},
		{"labels inside another's warn", docker + tenant("a", `{ "team" = "a" }`) + tenant("b", `{ "team" = "a", "tier" = "web" }`), exitOK,
			[]string{`egressfw: warning: tenant "a": docker_labels are a subset of tenant "b"'s`, "valid (2 tenants)"}},
		{"no socket", tenant("a", `{ "team" = "a" }`), exitFail, []string{`tenant "a".docker_labels: needs docker.socket`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run("check-config", "--config", writeConfig(t, tc.body))
			for _, w := range tc.want {
				if code != tc.wantCode || !strings.Contains(out+errOut, w) {
					t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant output containing %q", code, tc.wantCode, out, errOut, w)
				}
			}
		})
	}
}

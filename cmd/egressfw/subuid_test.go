package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigSubUIDs: check-config refuses uid 0 and uids that the
// host's sub-uid file would give two tenants, and warns, without failing,
// about sub-uids a tenant leaves uncovered.
func TestCheckConfigSubUIDs(t *testing.T) {
	dir := t.TempDir()
	sub, pw := filepath.Join(dir, "subuid"), filepath.Join(dir, "passwd")
	if err := os.WriteFile(sub, []byte("alice:100000:65536\nbob:1002:10\nbroken line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("alice:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fw := "[firewall]\nsubuid_file = \"" + sub + "\"\npasswd_file = \"" + pw + "\"\n"
	tests := []struct {
		name     string
		body     string
		wantCode int
		want     []string
	}{
		{"uid 0", "[[tenant]]\nname = \"a\"\nuids = [0]\n", exitFail, []string{`tenant "a".uids: uid 0 is root`}},
		{"uncovered sub-uids warn", fw + "[[tenant]]\nname = \"a\"\nuids = [1000]\nfollow_subuid = false\n", exitOK,
			[]string{`egressfw: warning: tenant "a": sub-uids 100000-165535 of uid 1000, ` + sub + ` line 1: alice:100000:65536: not covered`,
				"egressfw: warning: " + sub + " line 3: want", "valid (1 tenant)"}},
		{"followed sub-uids are fine", fw + "[[tenant]]\nname = \"a\"\nuids = [1000]\n", exitOK, []string{"valid (1 tenant)"}},
		{"sub-uids over another tenant's uid", fw + "[[tenant]]\nname = \"b\"\nuids = [1001]\n[[tenant]]\nname = \"c\"\nuids = [1005]\n", exitFail,
			[]string{`uids claimed twice: tenant "b" (sub-uids 1002-1011 of uid 1001, ` + sub + ` line 2: bob:1002:10) and tenant "c" (uid 1005)`}},
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

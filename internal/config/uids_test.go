package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestUIDTenants(t *testing.T) {
	uidTenant := func(name, extra string) string { return "[[tenant]]\nname = \"" + name + "\"\n" + extra + "\n" }
	bad := []struct {
		name, toml string
		want       []string
	}{
		{"uid 0", uidTenant("a", "uids = [1000, 0]"), []string{`tenant "a".uids: uid 0 is root`}},
		{"uid (uid_t)-1", uidTenant("a", "uids = [4294967295]"), []string{`tenant "a".uids: uid 4294967295 is (uid_t)-1`}},
		{"range with 0", uidTenant("a", `uid_ranges = ["0-65535"]`), []string{`tenant "a".uid_ranges: 0-65535 contains uid 0 (root)`}},
		{"range to (uid_t)-1", uidTenant("a", `uid_ranges = ["4294900000-4294967295"]`), []string{`tenant "a".uid_ranges: 4294900000-4294967295 contains uid 4294967295`}},
		{"range reversed", uidTenant("a", `uid_ranges = ["2000-1000"]`), []string{`tenant[0]`, `not a uid range like "100000-165535"`, `"2000-1000"`}},
		{"range not a number", uidTenant("a", `uid_ranges = ["alice"]`), []string{`not a uid range`}},
		{"range overlaps another tenant's range", uidTenant("a", `uid_ranges = ["100000-165535"]`) + uidTenant("b", `uid_ranges = ["165535-231071"]`),
			[]string{`tenant "b".uid_ranges: uid range 165535-231071 is also claimed by tenant "a" (its uid range 100000-165535)`}},
		{"uid inside another tenant's range", uidTenant("a", `uid_ranges = ["100000-165535"]`) + uidTenant("b", "uids = [100999]"),
			[]string{`tenant "b".uids: uid 100999 is also claimed by tenant "a" (its uid range 100000-165535)`}},
		{"range over another tenant's uid", uidTenant("a", "uids = [1000]") + uidTenant("b", `uid_ranges = ["1-65535"]`),
			[]string{`tenant "b".uid_ranges: uid range 1-65535 is also claimed by tenant "a" (its uid 1000)`}},
		{"bad subuid file", "[firewall]\nsubuid_file = \"etc/subuid\"\n", []string{`firewall.subuid_file: "etc/subuid" must be a clean absolute path`}},
		{"bad passwd file", "[firewall]\npasswd_file = \"/etc/../passwd\"\n", []string{`firewall.passwd_file`}},
	}
	for _, tc := range bad {
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

	cfg, err := Parse([]byte(uidTenant("a", `uids = [1000]`+"\n"+`uid_ranges = ["100000-165535", "70000"]`)+
		uidTenant("b", `uids = [1001]`+"\n"+`uid_ranges = ["165536-231071"]`+"\n"+`follow_subuid = false`)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Tenants[0], cfg.Tenants[1]
	if want := []UIDRange{{100000, 165535}, {70000, 70000}}; !reflect.DeepEqual(a.UIDRanges, want) {
		t.Errorf("uid_ranges = %v, want %v", a.UIDRanges, want)
	}
	if !a.FollowSubUID || b.FollowSubUID {
		t.Errorf("follow_subuid: a %v (default, want true), b %v (want false)", a.FollowSubUID, b.FollowSubUID)
	}
	if cfg.Firewall.SubUIDFile != "/etc/subuid" || cfg.Firewall.PasswdFile != "/etc/passwd" {
		t.Errorf("subuid_file %q, passwd_file %q: want the system's", cfg.Firewall.SubUIDFile, cfg.Firewall.PasswdFile)
	}
	if want := []UIDRange{{1000, 1000}, {70000, 70000}, {100000, 165535}}; !reflect.DeepEqual(a.UIDIntervals(), want) {
		t.Errorf("UIDIntervals = %v, want %v", a.UIDIntervals(), want)
	}
}

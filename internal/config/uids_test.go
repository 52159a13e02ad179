package config

import (
	"reflect"
	"testing"
)

// TestUIDTenants: uid_ranges and follow_subuid decode; the errors are in
// TestParseErrors.
func TestUIDTenants(t *testing.T) {
	cfg, err := Parse([]byte(uidTOML("a", `uids = [1000]`+"\n"+`uid_ranges = ["100000-165535", "70000"]`)+
		uidTOML("b", `uids = [1001]`+"\n"+`uid_ranges = ["165536-231071"]`+"\n"+`follow_subuid = false`)), "test.toml")
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
}

package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/nft/nftspec"
	"github.com/egressfw/egressfw/internal/proxy/proxytest"
)

const testPasswd = "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\ncarol:x:1002:1002::/:/bin/sh\n"

// uidConfig writes subuid and passwd files into a temporary directory and
// parses tenants with a [firewall] section pointing at them.
func uidConfig(t *testing.T, subuid, tenants string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	sub, pw := filepath.Join(dir, "subuid"), filepath.Join(dir, "passwd")
	for p, c := range map[string]string{sub: subuid, pw: testPasswd} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse([]byte("[firewall]\nsubuid_file = \""+sub+"\"\npasswd_file = \""+pw+"\"\n"+tenants), "test")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func tenantTOML(name, extra string) string {
	return "[[tenant]]\nname = \"" + name + "\"\n" + extra + "\n"
}

func TestTenantUIDRanges(t *testing.T) {
	tests := []struct {
		name, subuid, tenants string
		want                  uidRanges
		wantWarn              []string
		wantErr               string
	}{
		{name: "by user name and by uid number, plus uid_ranges",
			subuid:  "alice:100000:65536\n1000:300000:10\nbob:165536:65536\n",
			tenants: tenantTOML("a", "uids = [1000]\nuid_ranges = [\"500000-500009\"]"),
			want:    uidRanges{"a": {{First: 500000, Last: 500009}, {First: 100000, Last: 165535}, {First: 300000, Last: 300009}}}},
		{name: "no sub-uids, no ranges", subuid: "", tenants: tenantTOML("a", "uids = [1000]"), want: uidRanges{}},
		{name: "follow_subuid = false warns about what is left uncovered",
			subuid:   "alice:100000:65536\nalice:200000:10\n",
			tenants:  tenantTOML("a", "uids = [1000]\nfollow_subuid = false\nuid_ranges = [\"200000-200009\"]"),
			want:     uidRanges{"a": {{First: 200000, Last: 200009}}},
			wantWarn: []string{`tenant "a": sub-uids 100000-165535 of uid 1000, `, `line 1: alice:100000:65536: not covered`}},
		{name: "skipped lines are warnings", subuid: "alice:x:1\nalice:100000:1\n", tenants: tenantTOML("a", "uids = [1000]"),
			want: uidRanges{"a": {{First: 100000, Last: 100000}}}, wantWarn: []string{"line 1: want \"owner:start:count\""}},
		{name: "sub-uids over another tenant's uid",
			subuid:  "alice:1000:65536\n",
			tenants: tenantTOML("a", "uids = [1000]") + tenantTOML("b", "uids = [1001]"),
			wantErr: `uids claimed twice: tenant "a" (sub-uids 1000-66535 of uid 1000, `},
		{name: "sub-uids of two tenants overlap",
			subuid:  "alice:100000:65536\nbob:165000:65536\n",
			tenants: tenantTOML("a", "uids = [1000]") + tenantTOML("b", "uids = [1001]"),
			wantErr: `and tenant "b" (sub-uids 165000-230535 of uid 1001, `},
		{name: "sub-uids over another tenant's uid_ranges",
			subuid:  "bob:100000:10\n",
			tenants: tenantTOML("a", "uid_ranges = [\"100005-100006\"]") + tenantTOML("b", "uids = [1001]"),
			wantErr: `uids claimed twice: tenant "b" (sub-uids 100000-100009 of uid 1001, `},
		{name: "sub-uids holding uid 0", subuid: "alice:0:65536\n", tenants: tenantTOML("a", "uids = [1000]"),
			wantErr: `tenant "a": sub-uids 0-65535 of uid 1000, `},
		{name: "a tenant's own sub-uids over its own range are fine",
			subuid:  "alice:100000:65536\n",
			tenants: tenantTOML("a", "uids = [1000]\nuid_ranges = [\"100000-100009\"]"),
			want:    uidRanges{"a": {{First: 100000, Last: 100009}, {First: 100000, Last: 165535}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := uidConfig(t, tc.subuid, tc.tenants)
			got, warns, err := loadUIDRanges(cfg)
			if expectErr(t, err, tc.wantErr) {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ranges = %v, want %v", got, tc.want)
			}
			joined := strings.Join(warns, "\n")
			for _, w := range tc.wantWarn {
				if !strings.Contains(joined, w) {
					t.Errorf("warnings %q lack %q", warns, w)
				}
			}
			if len(tc.wantWarn) == 0 && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

// TestRefreshUIDs: a change of the sub-uid file is applied to the rules
// without a reload; a change that would give one uid two tenants is
// logged and the ranges in force stay, in the rules and in the snapshot.
func TestRefreshUIDs(t *testing.T) {
	cfg := uidConfig(t, "alice:100000:65536\n", tenantTOML("a", "uids = [1000]")+tenantTOML("b", "uids = [1001]"))
	logs := &proxytest.Logs{}
	d := &Daemon{log: slog.New(slog.NewJSONHandler(logs, nil))}
	gen, err := rulesGeneration(cfg) // slots and ranges, as a start installs them
	if err != nil {
		t.Fatal(err)
	}
	d.gen.Store(gen)
	var applied []nftspec.Spec
	d.rules = rulesFunc(func(_ context.Context, gen *generation, ready func() error) error {
		applied = append(applied, nftSpec(gen))
		return ready()
	})
	write := func(content string) {
		if err := os.WriteFile(cfg.Firewall.SubUIDFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rangesOf := func(spec nftspec.Spec, name string) []nftspec.UIDRange {
		for _, tn := range spec.Tenants {
			if tn.Name == name {
				return tn.UIDRanges
			}
		}
		return nil
	}

	write("alice:100000:65536\nbob:200000:65536\n")
	d.refreshUIDs(context.Background())
	if len(applied) != 1 || !reflect.DeepEqual(rangesOf(applied[0], "b"), []nftspec.UIDRange{{First: 200000, Last: 265535}}) {
		t.Fatalf("bob's new sub-uids: applied %+v, want one apply giving b 200000-265535", applied)
	}
	if a := d.st.lastApply.Load(); a == nil || a.Error != "" {
		t.Errorf("egressfw status's last apply after the sub-uid change: %+v", a)
	}

	write("alice:100000:65536\nbob:150000:65536\n") // bob's range over alice's
	d.refreshUIDs(context.Background())
	if len(applied) != 1 {
		t.Fatalf("an overlapping change was applied: %+v", applied[1:])
	}
	if got := d.gen.Load().uids["b"]; !reflect.DeepEqual(got, []nftspec.UIDRange{{First: 200000, Last: 265535}}) {
		t.Fatalf("ranges in force after a refused change = %v, want b's previous 200000-265535", got)
	}
	if !strings.Contains(string(logs.Bytes()), `sub-uid change not applied; keeping the uid ranges in force`) {
		t.Fatalf("refused change not logged:\n%s", logs.Bytes())
	}

	d.refreshUIDs(context.Background()) // the same file again: nothing to do
	write("alice:100000:65536\nbob:200000:65536\n")
	d.refreshUIDs(context.Background()) // back to what is in force: nothing to do
	if len(applied) != 1 {
		t.Fatalf("unchanged ranges re-applied: %d applies", len(applied))
	}
}

// rulesFunc is a ruleset that calls itself.
type rulesFunc func(ctx context.Context, gen *generation, ready func() error) error

func (f rulesFunc) apply(ctx context.Context, gen *generation, ready func() error) error {
	return f(ctx, gen, ready)
}

// TestGuardKeepsUIDRanges: with a sub-uid file egressfw refuses (it gives
// alice's and bob's sub-uids to two tenants, and root to a third), the boot
// guard still installs the tenants' own uid_ranges and every sub-uid it can
// give one tenant: the conflicting range under its first claimant (the
// guard blocks both tenants alike), and never root. With the file
// unreadable, the uid_ranges alone.
func TestGuardKeepsUIDRanges(t *testing.T) {
	cfg := uidConfig(t, "alice:100000:65536\nbob:100000:65536\ncarol:0:10\n",
		tenantTOML("a", "uids = [1000]\nuid_ranges = [\"500000-500009\", \"100000-100009\"]")+
			tenantTOML("b", "uids = [1001]")+tenantTOML("c", "uids = [1002]"))
	if _, _, err := loadUIDRanges(cfg); err == nil {
		t.Fatal("the sub-uid file loads; the test needs one egressfw refuses")
	}
	gen, err := guardGeneration(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := uidRanges{
		"a": {{First: 500000, Last: 500009}, {First: 100000, Last: 100009}, {First: 100010, Last: 165535}},
		"c": {{First: 1, Last: 9}},
	}
	if !reflect.DeepEqual(gen.uids, want) {
		t.Errorf("guard uid ranges %v, want %v", gen.uids, want)
	}
	if err := os.Remove(cfg.Firewall.SubUIDFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cfg.Firewall.SubUIDFile, 0o755); err != nil { // unreadable as a file
		t.Fatal(err)
	}
	if gen, err = guardGeneration(cfg, nil, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if want := (uidRanges{"a": {{First: 500000, Last: 500009}, {First: 100000, Last: 100009}}}); !reflect.DeepEqual(gen.uids, want) {
		t.Errorf("guard uid ranges with the file unreadable %v, want %v", gen.uids, want)
	}
}

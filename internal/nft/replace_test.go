package nft

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// blocks splits a table listing into its normalised set, map and chain
// blocks, sorted: an in-place replacement appends new objects, so only a
// table applied from scratch lists them in Render's order.
func blocks(listing string) []string {
	var out []string
	var cur []string
	for _, l := range strings.Split(tproxyPortMap.ReplaceAllString(listing, "$1"), "\n") {
		switch {
		case strings.HasPrefix(l, "\tset "), strings.HasPrefix(l, "\tmap "), strings.HasPrefix(l, "\tchain "):
			cur = []string{l}
		case cur != nil && l == "\t}":
			out = append(out, normalize(strings.Join(append(cur, l), "\n")))
			cur = nil
		case cur != nil:
			cur = append(cur, l)
		}
	}
	slices.Sort(out)
	return out
}

var handleRe = regexp.MustCompile(`(?m)^\t?(table|set|map|chain) (?:inet )?(\S+) \{ # handle (\d+)$`)

// handles maps "table NAME", "chain NAME" and "set NAME" to the
// object's kernel handle. Set and chain handles count from 1 in each table,
// so only the table's handle tells a rebuilt table from the same one.
func handles(t *testing.T, ns *testNetns, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range handleRe.FindAllStringSubmatch(ns.nft(t, "-a", "list", "table", "inet", table), -1) {
		kind := m[1]
		if kind == "map" {
			kind = "set"
		}
		out[kind+" "+m[2]] = m[3]
	}
	return out
}

// TestReplaceInPlace re-applies rulesets that add and remove a tenant, a
// cgroup level and the uid map. After each Apply the kernel holds exactly
// what Render prints, and every chain and set that both rulesets have is
// the same kernel object as before (same handle): only rules and elements
// were replaced, which is what makes a replacement atomic for packets.
func TestReplaceInPlace(t *testing.T) {
	a, b, aIDs, bIDs := replaceSpecs()
	noUIDs := sampleSpec()
	for i := range noUIDs.Tenants {
		noUIDs.Tenants[i].UIDs = nil
	}
	steps := []struct {
		name string
		spec nftspec.Spec
		ids  nftspec.CgroupIDs
	}{
		{"initial", a, aIDs},
		{"same again", a, aIDs},
		{"add tenant and level", b, bIDs},
		{"remove them", a, aIDs},
		{"drop uid map", noUIDs, aIDs},
		{"bring it back", b, bIDs},
	}
	ns := newNetns(t, false)
	m := ns.manager(t)
	prev := map[string]string{}
	for _, s := range steps {
		if err := m.Apply(s.spec, s.ids); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := ns.nft(t, "list", "table", "inet", s.spec.Table)
		want, err := rules.Render(s.spec, s.ids)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := blocks(got), blocks(want); !slices.Equal(g, w) {
			t.Errorf("%s: kernel listing differs from Render.\nkernel:\n%s\nrender:\n%s", s.name, got, want)
		}
		now := handles(t, ns, s.spec.Table)
		for obj, h := range now {
			if old, ok := prev[obj]; ok && old != h {
				t.Errorf("%s: %s was re-created (handle %s, was %s)", s.name, obj, h, old)
			}
		}
		prev = now
	}
}

// TestApplyOverOtherVersion applies over a table of our name that another
// version (or a hand edit) left: objects whose definition differs are
// re-created, extra ones removed, and a table that cannot be updated in place
// at all is rebuilt. Afterwards the kernel holds exactly what Render prints.
func TestApplyOverOtherVersion(t *testing.T) {
	tests := []struct {
		name  string
		table string
	}{
		{"base chain moved", `table inet egressfw {
	chain prerouting { type filter hook prerouting priority raw; policy accept; counter; }
	chain input { type filter hook output priority filter; policy accept; }
}`},
		{"extra objects", `table inet egressfw {
	set old_ports { type inet_service; elements = { 8080 }; }
	chain tenant_9 { tcp dport @old_ports drop; }
	chain output { type route hook output priority mangle; policy accept; tcp dport 8080 jump tenant_9; }
}`},
		{"set of another type", `table inet egressfw {
	set intercept_ports { type ipv4_addr; elements = { 192.0.2.1 }; }
	map tproxy_ports { type mark : ipv4_addr; }
}`},
		// google/nftables cannot read a verdict map's key type, so this
		// one is only found out when its elements fail to load (other key
		// length) and the table is rebuilt.
		{"verdict map keyed otherwise", `table inet egressfw {
	chain tenant_2 { accept; }
	map uids { type ipv6_addr : verdict; elements = { 2001:db8::1 : jump tenant_2 }; }
}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t, false)
			ns.nftScript(t, tc.table)
			if err := ns.manager(t).Apply(sampleSpec(), sampleIDs); err != nil {
				t.Fatal(err)
			}
			got := ns.nft(t, "list", "table", "inet", "egressfw")
			want, err := rules.Render(sampleSpec(), sampleIDs)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := blocks(got), blocks(want); !slices.Equal(g, w) {
				t.Errorf("kernel listing differs from Render.\nkernel:\n%s\nrender:\n%s", got, want)
			}
		})
	}
}

package nft

import (
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

var (
	tableLine = regexp.MustCompile(`^table inet \S+ \{ # handle (\d+)$`)
	chainLine = regexp.MustCompile(`^\tchain (\S+) \{`)
	ruleLine  = regexp.MustCompile(`^\t\t.* # handle (\d+)$`)
)

// tableKey is where listWithHandles puts the table's own handle.
const tableKey = "(table)"

var handleSuffix = regexp.MustCompile(`(?m) # handle \d+$`)

// listWithHandles lists the table (empty when there is none) and maps each
// of its chains to its rules' kernel handles, in order: a rule that is
// re-sent gets a new handle. tableKey maps to the table's handle, which
// changes when the table is rebuilt. The listing is returned without the
// handles.
func listWithHandles(t *testing.T, ns *testNetns, table string) (string, map[string][]string) {
	t.Helper()
	hs := map[string][]string{}
	if !slices.Contains(strings.Split(ns.nft(t, "list", "tables"), "\n"), "table inet "+table) {
		return "", hs
	}
	listing := ns.nft(t, "-a", "list", "table", "inet", table)
	chain := ""
	for _, l := range strings.Split(listing, "\n") {
		if m := tableLine.FindStringSubmatch(l); m != nil {
			hs[tableKey] = []string{m[1]}
		} else if m := chainLine.FindStringSubmatch(l); m != nil {
			chain = m[1]
			hs[chain] = []string{}
		} else if m := ruleLine.FindStringSubmatch(l); m != nil && chain != "" {
			hs[chain] = append(hs[chain], m[1])
		}
	}
	return handleSuffix.ReplaceAllString(listing, ""), hs
}

// matching returns the chains of hs whose names match one of the patterns
// (path.Match syntax); each pattern must match one, so no check is vacuous.
func matching(t *testing.T, hs map[string][]string, patterns []string) []string {
	t.Helper()
	var out []string
	for _, p := range patterns {
		n := len(out)
		for name := range hs {
			if ok, _ := path.Match(p, name); ok && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
		if len(out) == n {
			t.Errorf("no chain matches %q", p)
		}
	}
	slices.Sort(out)
	return out
}

// keepStep is one Apply of TestKeptChains and what it must leave.
type keepStep struct {
	name string
	spec nftspec.Spec
	ids  nftspec.CgroupIDs
	// before runs first (a hand edit, say) and may return a new Manager.
	before func(t *testing.T, ns *testNetns, m *Manager) *Manager
	// kept chains have the same rule handles after the Apply as before it,
	// rewritten ones none of them; patterns as in path.Match.
	kept, rewritten []string
}

// TestKeptChains checks which chains an Apply rewrites: the rules of a
// tenant chain that stays the same are not re-sent (same kernel handles),
// those of a changed one are, base chains always are, and after every
// Apply the kernel holds what Render prints.
func TestKeptChains(t *testing.T) {
	one, oneIDs := benchSpec(1)
	many, manyIDs := benchSpec(1000)
	few, fewIDs := benchSpec(20)
	changed := changeTenant(many, 500)
	deeper, deeperIDs := benchSpec(20) // one more tenant, alone at cgroup level 3
	deeper.Tenants = append(deeper.Tenants, nftspec.Tenant{Name: "deep", Slot: 21, ListenerPort: 20021,
		Cgroups: []string{"a.slice/b.slice/deep.service"}, UIDs: []uint32{100021}})
	deeperIDs["a.slice/b.slice/deep.service"] = 1<<40 + 21
	base := []string{rules.ChainOutput, rules.ChainPrerouting, rules.ChainInput, rules.ChainEscape}
	deleteTable := func(t *testing.T, ns *testNetns, m *Manager) *Manager {
		ns.nft(t, "delete", "table", "inet", few.Table)
		return m
	}
	deleteRule := func(t *testing.T, ns *testNetns, m *Manager) *Manager {
		_, hs := listWithHandles(t, ns, few.Table)
		ns.nft(t, "delete", "rule", "inet", few.Table, "tenant_7", "handle", hs["tenant_7"][1])
		return m
	}
	flushChain := func(t *testing.T, ns *testNetns, m *Manager) *Manager {
		ns.nft(t, "flush", "chain", "inet", few.Table, "tenant_7")
		return m
	}
	foreignTable := func(t *testing.T, ns *testNetns, m *Manager) *Manager {
		ns.nft(t, "add", "table", "inet", "someone_else")
		return m
	}
	restart := func(t *testing.T, ns *testNetns, _ *Manager) *Manager { return ns.manager(t) }
	tests := []struct {
		name  string
		steps []keepStep
	}{
		{"unchanged 1000 re-applied", []keepStep{
			{name: "initial", spec: many, ids: manyIDs},
			{name: "same again", spec: many, ids: manyIDs, kept: []string{"tenant_*", rules.ChainDeny}, rewritten: base},
		}},
		{"one tenant changed", []keepStep{
			{name: "initial", spec: many, ids: manyIDs},
			{name: "change tenant 500", spec: changed, ids: manyIDs,
				kept: []string{"tenant_1", "tenant_499", "tenant_501", "tenant_1000", rules.ChainDeny}, rewritten: []string{"tenant_500"}},
			{name: "change it back", spec: many, ids: manyIDs,
				kept: []string{"tenant_1", "tenant_499", "tenant_501", "tenant_1000"}, rewritten: []string{"tenant_500"}},
		}},
		{"1 to 1000 and back, twice", []keepStep{
			{name: "1", spec: one, ids: oneIDs},
			{name: "1000", spec: many, ids: manyIDs, kept: []string{"tenant_1", rules.ChainDeny}, rewritten: base},
			// 999 chains go: one table flush and 6 rules beat 1003 chain flushes.
			{name: "1 again", spec: one, ids: oneIDs, rewritten: append([]string{"tenant_1", rules.ChainDeny}, base...)},
			{name: "1000 again", spec: many, ids: manyIDs, kept: []string{"tenant_1", rules.ChainDeny}, rewritten: base},
		}},
		{"tenant and cgroup level removed", []keepStep{ // the level's map refers to the chain
			{name: "initial", spec: deeper, ids: deeperIDs},
			{name: "remove", spec: few, ids: fewIDs, kept: []string{"tenant_1", "tenant_20", rules.ChainDeny}, rewritten: base},
			{name: "add again", spec: deeper, ids: deeperIDs, kept: []string{"tenant_1", "tenant_20", rules.ChainDeny}, rewritten: base},
		}},
		{"table deleted behind our back", []keepStep{
			{name: "initial", spec: few, ids: fewIDs},
			{name: "re-apply", spec: few, ids: fewIDs, before: deleteTable},
		}},
		// Any other transaction since our last one (by hand, a restore, any
		// owner) and the next Apply rewrites every chain.
		{"rule deleted by hand", []keepStep{
			{name: "initial", spec: few, ids: fewIDs},
			{name: "same Manager", spec: few, ids: fewIDs, before: deleteRule, rewritten: []string{"tenant_*"}},
			{name: "then unchanged", spec: few, ids: fewIDs, kept: []string{"tenant_*"}},
		}},
		{"chain flushed by hand", []keepStep{
			{name: "initial", spec: few, ids: fewIDs},
			{name: "same Manager", spec: few, ids: fewIDs, before: flushChain, rewritten: []string{"tenant_*"}},
		}},
		{"another owner's table changes", []keepStep{
			{name: "initial", spec: few, ids: fewIDs},
			{name: "same Manager", spec: few, ids: fewIDs, before: foreignTable, rewritten: []string{"tenant_*"}},
		}},
		{"new Manager", []keepStep{
			{name: "initial", spec: few, ids: fewIDs},
			{name: "restart", spec: few, ids: fewIDs, before: restart, rewritten: []string{"tenant_*"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t, false)
			m := ns.manager(t)
			var prev map[string][]string
			for _, s := range tc.steps {
				if s.before != nil {
					m = s.before(t, ns, m)
					_, prev = listWithHandles(t, ns, s.spec.Table)
				}
				if err := m.Apply(s.spec, s.ids); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				got, now := listWithHandles(t, ns, s.spec.Table)
				if prev[tableKey] != nil && !slices.Equal(prev[tableKey], now[tableKey]) {
					t.Errorf("%s: the table was rebuilt (handle %v, was %v), not updated in place", s.name, now[tableKey], prev[tableKey])
				}
				for _, c := range matching(t, prev, s.kept) {
					if !slices.Equal(prev[c], now[c]) {
						t.Errorf("%s: chain %s was rewritten: rule handles %v, were %v", s.name, c, now[c], prev[c])
					}
				}
				for _, c := range matching(t, prev, s.rewritten) {
					if slices.ContainsFunc(now[c], func(h string) bool { return slices.Contains(prev[c], h) }) {
						t.Errorf("%s: chain %s kept rules: handles %v, were %v", s.name, c, now[c], prev[c])
					}
				}
				want, err := rules.Render(s.spec, s.ids)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(blocks(got), blocks(want)) {
					t.Errorf("%s: kernel listing differs from Render; some chains:\n%s", s.name, excerpt(got, "tenant_7", "tenant_10", "tenant_500"))
				}
				prev = now
			}
		})
	}
}

// changeTenant returns spec with another allow_direct for the tenant in
// slot (benchSpec's slots are 1..n), which then has an anonymous port set.
func changeTenant(spec nftspec.Spec, slot int) nftspec.Spec {
	spec.Tenants = slices.Clone(spec.Tenants)
	spec.Tenants[slot-1].AllowDirect = []nftspec.Direct{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Ports: []uint16{443, 80}, Proto: "tcp"}}
	return spec
}

// excerpt returns the blocks of the named chains from a table listing, so a
// failure shows what matters rather than 1000 chains.
func excerpt(listing string, chains ...string) string {
	var out []string
	for _, b := range blocks(listing) {
		for _, c := range chains {
			if strings.HasPrefix(b, "chain "+c+" {") {
				out = append(out, b)
			}
		}
	}
	return strings.Join(out, "\n")
}

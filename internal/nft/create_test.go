package nft

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/rules"
)

// TestCreateNeverReplaces: Create installs a missing table with its
// routing, and leaves a table of that name alone, whoever made it and
// whatever it holds: the guard cannot replace egressfw's table.
func TestCreateNeverReplaces(t *testing.T) {
	ns := newNetns(t, false)
	spec := sampleSpec()
	created, err := ns.manager(t).Create(spec, sampleIDs)
	if err != nil || !created {
		t.Fatalf("Create on an empty namespace = %v, %v; want true, nil", created, err)
	}
	want, err := rules.Render(spec, sampleIDs)
	if err != nil {
		t.Fatal(err)
	}
	if have := ns.nft(t, "list", "table", "inet", "egressfw"); !slices.Equal(blocks(have), blocks(want)) {
		t.Errorf("table after Create:\n%s\nwant:\n%s", have, want)
	}
	if out := ns.Run(t, "ip", "-4", "rule", "show"); !strings.Contains(out, "lookup 1515") {
		t.Errorf("no fwmark rule after Create:\n%s", out)
	}

	other := forwardedSpec() // another table's contents (egressfw's, say)
	m := ns.manager(t)
	if err := m.Apply(other, sampleIDs); err != nil {
		t.Fatal(err)
	}
	before := ns.nft(t, "list", "table", "inet", "egressfw")
	if created, err := ns.manager(t).Create(spec, sampleIDs); err != nil || created {
		t.Fatalf("Create over an existing table = %v, %v; want false, nil", created, err)
	}
	if after := ns.nft(t, "list", "table", "inet", "egressfw"); after != before {
		t.Errorf("Create changed the existing table:\n%s\nwas:\n%s", after, before)
	}
}

// TestWatchTable: every transaction that changes the table, by another
// program or the Manager itself, is reported once it is committed; other
// tables' are not.
func TestWatchTable(t *testing.T) {
	ns := newNetns(t, false)
	m := ns.manager(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	got := make(chan struct{}, 10)
	if err := m.WatchTable(ctx, "egressfw", func() { got <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	expect := func(what string, n int) {
		t.Helper()
		for i := range n {
			select {
			case <-got:
			case <-time.After(2 * time.Second):
				t.Fatalf("%s: %d of %d reports", what, i, n)
			}
		}
		select {
		case <-got:
			t.Fatalf("%s: more than %d reports", what, n)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if _, err := m.Create(sampleSpec(), sampleIDs); err != nil {
		t.Fatal(err)
	}
	expect("Create", 1)
	ns.nftScript(t, foreignRuleset)
	expect("another table", 0)
	ns.nft(t, "flush", "ruleset")
	expect("flush ruleset", 1)
}

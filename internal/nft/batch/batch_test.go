package batch

import (
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/netnstest"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	mdnetlink "github.com/mdlayher/netlink"
)

// TestBatcherCommit: a batch is one transaction. A message the kernel
// refuses, first, in the middle or last, fails the commit with the
// kernel's error and leaves nothing of the batch behind; the next batch on
// the same batcher commits. Every message goes out without echo and only
// the last asks for an acknowledgement.
func TestBatcherCommit(t *testing.T) {
	const table = "egfw_batch"
	tbl := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	chain := func(name string) *nftables.Chain { return &nftables.Chain{Table: tbl, Name: name} }
	// jumpTo is a rule in chain a that jumps to chain to (ENOENT if missing).
	jumpTo := func(a, to string) *nftables.Rule {
		return &nftables.Rule{Table: tbl, Chain: chain(a),
			Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: to}}}
	}
	tests := []struct {
		name    string
		queue   func(q *nftables.Conn)
		wantErr string // "" = commits
	}{
		{name: "valid batch commits", queue: func(q *nftables.Conn) {
			q.AddTable(tbl)
			q.AddChain(chain("a"))
			q.AddChain(chain("b"))
			q.AddRule(jumpTo("a", "b"))
		}},
		{name: "bad first message", wantErr: "no such file or directory", queue: func(q *nftables.Conn) {
			q.AddChain(chain("a")) // no table
			q.AddTable(tbl)
			q.AddChain(chain("b"))
		}},
		{name: "bad middle message", wantErr: "no such file or directory", queue: func(q *nftables.Conn) {
			q.AddTable(tbl)
			q.AddChain(chain("a"))
			q.AddRule(jumpTo("a", "missing"))
			q.AddChain(chain("b"))
		}},
		{name: "two bad messages", wantErr: "no such file or directory", queue: func(q *nftables.Conn) {
			q.AddTable(tbl)
			q.AddChain(chain("a"))
			q.AddRule(jumpTo("a", "missing"))
			q.AddRule(jumpTo("a", "missing too"))
			q.AddChain(chain("b"))
		}},
		{name: "bad last message", wantErr: "no such file or directory", queue: func(q *nftables.Conn) {
			q.AddTable(tbl)
			q.AddChain(chain("a"))
			q.AddRule(jumpTo("a", "missing"))
		}},
	}
	ns := netnstest.New(t, netnstest.UniqueName(prefix))
	b, err := New(ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.queue(b.Queue())
			err := b.Commit()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("commit: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("commit: err = %v, want %q", err, tc.wantErr)
			}
			checkOneAck(t, b.captured)
			listing := ns.Run(t, "nft", "list", "tables")
			if has := strings.Contains(listing, table); has != (tc.wantErr == "") {
				t.Errorf("table present = %v after commit (err %v):\n%s", has, err, listing)
			}
			// The next batch on the same batcher works either way.
			b.Queue().AddTable(tbl)
			b.Queue().DelTable(tbl)
			if err := b.Commit(); err != nil {
				t.Fatalf("commit after: %v", err)
			}
			if l := ns.Run(t, "nft", "list", "tables"); strings.Contains(l, table) {
				t.Fatalf("table still there after delete:\n%s", l)
			}
		})
	}
}

// checkOneAck asserts the flags commit sent: batch begin and end, between
// them no echo anywhere and an acknowledgement on the last message only.
func checkOneAck(t *testing.T, msgs []mdnetlink.Message) {
	t.Helper()
	if len(msgs) < 3 {
		t.Fatalf("batch of %d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.Header.Flags&mdnetlink.Echo != 0 {
			t.Errorf("message %d of %d asks for an echo", i, len(msgs))
		}
		if ack := m.Header.Flags&mdnetlink.Acknowledge != 0; ack != (i == len(msgs)-2) {
			t.Errorf("message %d of %d: acknowledge = %v", i, len(msgs), ack)
		}
	}
}

func TestOthersIn(t *testing.T) {
	cases := []struct {
		name                    string
		at, before, after, back uint32
		committed               bool
		want                    bool
	}{
		{"only ours", 7, 7, 8, 8, true, false},
		{"ours failed, nothing else", 7, 7, 7, 7, false, false},
		{"one before ours", 7, 8, 9, 9, true, true},
		{"one during ours", 7, 7, 9, 9, true, true},
		{"one after ours", 7, 7, 8, 9, true, true},
		{"one while ours failed", 7, 7, 8, 8, false, true},
		{"wrapped around", 0xffffffff, 0xffffffff, 0, 0, true, false},
	}
	for _, tc := range cases {
		if got := othersIn(tc.at, tc.before, tc.after, tc.back, tc.committed); got != tc.want {
			t.Errorf("%s: othersIn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

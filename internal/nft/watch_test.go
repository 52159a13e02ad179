package nft

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// watching applies spec in a fresh namespace and starts Watch; restores
// arrive on the returned channel.
func watching(t testing.TB, spec nftspec.Spec, ids nftspec.CgroupIDs) (*testNetns, *Manager, <-chan Restore) {
	t.Helper()
	ns := newNetns(t, false)
	m, got := watchIn(t, ns, spec, ids)
	return ns, m, got
}

// watchIn is watching in the namespace ns.
func watchIn(t testing.TB, ns *testNetns, spec nftspec.Spec, ids nftspec.CgroupIDs) (*Manager, <-chan Restore) {
	t.Helper()
	m := ns.manager(t)
	if err := m.Apply(spec, ids); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	got := make(chan Restore, 100)
	if err := m.Watch(ctx, func(r Restore) { got <- r }); err != nil {
		t.Fatal(err)
	}
	return m, got
}

// handleOf finds the handle of the first rule of chain that contains text.
func handleOf(t *testing.T, ns *testNetns, chain, text string) string {
	t.Helper()
	for _, l := range strings.Split(ns.nft(t, "-a", "list", "chain", "inet", "egressfw", chain), "\n") {
		if strings.Contains(l, text) {
			if m := regexp.MustCompile(`# handle (\d+)$`).FindStringSubmatch(l); m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("no rule with %q in chain %s", text, chain)
	return ""
}

// TestWatchRestores changes egressfw's table and routing the ways an
// operator's tools do, each from another process: the watch puts back
// exactly what Apply installed, once, and names what changed and who did it.
func TestWatchRestores(t *testing.T) {
	spec := forwardedSpec()
	cases := []struct {
		name   string
		change func(t *testing.T, ns *testNetns)
		what   string // a regexp Restore.What matches
		byNft  bool   // Restore.By names the nft process
	}{
		{"delete table", func(t *testing.T, ns *testNetns) { ns.nft(t, "delete", "table", "inet", "egressfw") },
			`delete table \(egressfw\)`, true},
		{"flush ruleset", func(t *testing.T, ns *testNetns) { ns.nft(t, "flush", "ruleset") },
			`delete table \(egressfw\)`, true},
		{"nft -f of a file that flushes the ruleset", func(t *testing.T, ns *testNetns) {
			ns.nftScript(t, "flush ruleset\ntable inet filter {\n\tchain input { type filter hook input priority filter; policy accept; }\n}\n")
		}, `delete table \(egressfw\)`, true},
		{"flush a chain", func(t *testing.T, ns *testNetns) { ns.nft(t, "flush", "chain", "inet", "egressfw", "tenant_2") },
			"delete rule", true},
		{"delete a rule", func(t *testing.T, ns *testNetns) {
			ns.nft(t, "delete", "rule", "inet", "egressfw", "forward_3", "handle", handleOf(t, ns, "forward_3", "goto deny"))
		}, `delete rule \(forward_3\)`, true},
		{"delete a base chain", func(t *testing.T, ns *testNetns) { ns.nft(t, "delete", "chain", "inet", "egressfw", "postrouting") },
			`delete chain \(postrouting\)`, true},
		{"delete a map element", func(t *testing.T, ns *testNetns) {
			ns.nft(t, "delete", "element", "inet", "egressfw", "uids", "{ 4242 }")
		}, `delete element( ×2)? \(uids\)`, true}, // an interval map: one or two elements
		{"insert a rule", func(t *testing.T, ns *testNetns) { ns.nft(t, "insert", "rule", "inet", "egressfw", "output", "accept") },
			`add rule \(output\)`, true},
		{"delete the ip rule", func(t *testing.T, ns *testNetns) { ns.Run(t, "ip", "-4", "rule", "del", "pref", "1515") },
			"removed routing: IPv4 rule fwmark 0x2000/0x3000 lookup 1515", false},
		{"delete the IPv6 route", func(t *testing.T, ns *testNetns) {
			ns.Run(t, "ip", "-6", "route", "del", "local", "default", "table", "1515")
		},
			"removed routing: IPv6 local default route in table 1515", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns, _, got := watching(t, spec, sampleIDs)
			want := blocks(ns.nft(t, "list", "table", "inet", "egressfw"))
			route := routingState(t, ns, spec)
			tc.change(t, ns)
			var r Restore
			select {
			case r = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no restore within 5s")
			}
			t.Logf("restore: %+v", r)
			if r.Err != nil || r.Attempt != 1 || r.Throttled {
				t.Fatalf("restore %+v, want a first, unthrottled, successful one", r)
			}
			if !regexp.MustCompile(tc.what).MatchString(r.What) {
				t.Errorf("Restore.What = %q, want it to match %q", r.What, tc.what)
			}
			if tc.byNft && !regexp.MustCompile(`^nft\[\d+\]$`).MatchString(r.By) {
				t.Errorf("Restore.By = %q, want nft[PID]", r.By)
			}
			if have := blocks(ns.nft(t, "list", "table", "inet", "egressfw")); !slices.Equal(have, want) {
				t.Errorf("table after the restore:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
			}
			if have := routingState(t, ns, spec); have != route {
				t.Errorf("routing after the restore:\n%s\nwant:\n%s", have, route)
			}
			select {
			case r := <-got:
				t.Errorf("a second restore %+v for one change (the restore itself must not trigger one)", r)
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}

// TestWatchIgnoresOwnAndOthers: egressfw's own applies, cgroup updates and
// cleanup, and other owners' tables, trigger no restore.
func TestWatchIgnoresOwnAndOthers(t *testing.T) {
	ns, m, got := watching(t, sampleSpec(), sampleIDs)
	other := forwardedSpec()
	steps := []struct {
		name string
		do   func() error
	}{
		{"re-apply another spec", func() error { return m.Apply(other, sampleIDs) }},
		{"set cgroup ids", func() error { return m.SetCgroupIDs(nftspec.CgroupIDs{"batch.slice": 1<<40 + 99}) }},
		{"another owner's table", func() error { ns.nftScript(t, foreignRuleset); return nil }},
		{"another owner's table deleted", func() error { ns.nft(t, "delete", "table", "inet", "other"); return nil }},
		{"cleanup", func() error { return m.Cleanup(other) }},
		{"a table named like ours, after cleanup", func() error {
			ns.nft(t, "add", "table", "inet", "egressfw")
			ns.nft(t, "delete", "table", "inet", "egressfw")
			return nil
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		select {
		case r := <-got:
			t.Errorf("%s: restore %+v, want none", s.name, r)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// TestWatchRetries: a table the kernel will not let egressfw touch (owned
// by another process's socket) makes every restore fail, and each failure
// is reported and retried with a growing delay; once the owner lets go, the
// next retry restores.
func TestWatchRetries(t *testing.T) {
	ns, _, got := watching(t, sampleSpec(), sampleIDs)
	want := blocks(ns.nft(t, "list", "table", "inet", "egressfw"))

	// nft -i keeps its socket (and so its table) until stdin closes.
	owner := ns.Cmd("nft", "-i")
	stdin, err := owner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); owner.Wait() })
	fmt.Fprintln(stdin, "delete table inet egressfw; add table inet egressfw { flags owner; }")
	var times []time.Time
	for len(times) < 4 {
		select {
		case r := <-got:
			if r.Err == nil {
				t.Fatalf("restore %+v succeeded on a table another socket owns", r)
			}
			if r.Attempt != len(times)+1 {
				t.Errorf("attempt %d, want %d", r.Attempt, len(times)+1)
			}
			times = append(times, time.Now())
		case <-time.After(5 * time.Second):
			t.Fatalf("%d failed restores reported, want 4 within 5s each", len(times))
		}
	}
	for i := 2; i < len(times); i++ {
		if times[i].Sub(times[i-1]) < times[i-1].Sub(times[i-2]) {
			t.Errorf("retry delays %v then %v: want them to grow", times[i-1].Sub(times[i-2]), times[i].Sub(times[i-1]))
		}
	}
	stdin.Close() // the owner exits; the kernel removes its table
	owner.Wait()
	for {
		select {
		case r := <-got:
			if r.Err != nil {
				continue // a retry that ran before the owner was gone
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no successful restore within 10s of the owner leaving")
		}
		break
	}
	if have := blocks(ns.nft(t, "list", "table", "inet", "egressfw")); !slices.Equal(have, want) {
		t.Errorf("table after the owner left:\n%s", strings.Join(have, "\n"))
	}
}

// TestWatchThrottles: a program that keeps deleting the table has each
// deletion put back at once (restores were once held back to one a second;
// now only the reports are): the first reportRate.burst reports come one by
// one, the rest as summaries (Throttled, Count) no closer than
// reportRate.gap, and the counts add up to every deletion.
func TestWatchThrottles(t *testing.T) {
	ns, _, got := watching(t, sampleSpec(), sampleIDs)
	n := reportRate.burst + 3
	for i := 1; i <= n; i++ {
		ns.nft(t, "delete", "table", "inet", "egressfw")
		for deadline := time.Now().Add(reportRate.gap / 2); !strings.Contains(ns.nft(t, "list", "tables"), "egressfw"); {
			if time.Now().After(deadline) {
				t.Fatalf("deletion %d of %d: the table is not back within %v", i, n, reportRate.gap/2)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	restored, alone := 0, 0
	var summaries []time.Time
	for deadline := time.After(5*reportRate.gap + 5*time.Second); restored < n; {
		select {
		case r := <-got:
			if r.Err != nil {
				t.Fatalf("restore failed: %+v", r)
			}
			restored += r.Count
			if !r.Throttled {
				alone++
			} else {
				summaries = append(summaries, time.Now())
			}
		case <-deadline:
			t.Fatalf("%d deletions, %d restores reported", n, restored)
		}
	}
	if alone != reportRate.burst || len(summaries) == 0 || restored != n {
		t.Errorf("%d reports alone and %d summaries for %d restores of %d deletions; want %d alone, then summaries",
			alone, len(summaries), restored, n, reportRate.burst)
	}
	for i := 1; i < len(summaries); i++ {
		if d := summaries[i].Sub(summaries[i-1]); d < reportRate.gap-100*time.Millisecond {
			t.Errorf("summaries %d and %d %v apart, want at least %v", i, i+1, d, reportRate.gap)
		}
	}
}

// TestWatchAnswersEveryChange: a program that deletes the table every
// 20 ms for 3 s is answered every time (restores were once held back to one
// a second after 5 in 10 s, and the table stayed missing most of each
// second; TestWatchThrottles checks the spacing of the reports now). Every deletion is restored within 100 ms
// of the deleting transaction's end (in practice under a millisecond: the
// kernel lets the restore commit only once that transaction is done), and
// the reports stay bounded: reportRate.burst one by one, then one per
// reportRate.gap summing up the rest (Count), every restore counted. A uid
// tenant dialling all the while reaches the server it dials only while the
// other program's own transactions run (the kernel unhooks the table when
// such a transaction commits and finishes it 5-20 ms later; nothing can
// commit in between), so the share of its requests that get through is at
// most the share of the time spent in those transactions, plus a margin.
func TestWatchAnswersEveryChange(t *testing.T) {
	ns := newNetns(t, true)
	_, got := watchIn(t, ns, sampleSpec(), sampleIDs)
	var requests atomic.Int64
	ln := listenTCP(t, ns, "192.0.2.1:80", false)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if n, _ := c.Read(make([]byte, 1)); n > 0 {
					requests.Add(1)
				}
			}()
		}
	}()
	other, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	lister, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	const loop, every = 3 * time.Second, 20 * time.Millisecond
	stop := make(chan struct{})
	dials := make(chan [2]int, 1)
	go func() { dials <- dialLoop(t, ns, 4242, "192.0.2.1:80", stop) }()
	deleted := 0
	// inForeign: time spent in the deleting transactions; absent: from the
	// start of each until the table was seen back; slowest: the slowest
	// restore after one.
	var inForeign, absent, slowest time.Duration
	table := &nftables.Table{Name: "egressfw", Family: nftables.TableFamilyINet}
	start := time.Now()
	for time.Since(start) < loop {
		other.DelTable(table)
		t0 := time.Now()
		if err := other.Flush(); err != nil {
			t.Fatalf("deletion %d: %v", deleted+1, err)
		}
		t1 := time.Now()
		inForeign += t1.Sub(t0)
		deleted++
		for {
			if ts, err := lister.ListTablesOfFamily(nftables.TableFamilyINet); err == nil && len(ts) > 0 {
				break
			}
			if time.Since(t1) > 100*time.Millisecond {
				t.Fatalf("deletion %d: the table is not back 100ms after the deleting transaction", deleted)
			}
			time.Sleep(200 * time.Microsecond)
		}
		slowest = max(slowest, time.Since(t1))
		absent += time.Since(t0)
		time.Sleep(every)
	}
	elapsed := time.Since(start)
	close(stop)
	d := <-dials
	var reports []Restore
	restored := 0
	for deadline := time.After(5 * time.Second); restored < deleted; {
		select {
		case r := <-got:
			if r.Err != nil {
				t.Fatalf("restore failed: %+v", r)
			}
			reports = append(reports, r)
			restored += r.Count
		case <-deadline:
			t.Fatalf("%d deletions, %d restores reported within 5s of the last", deleted, restored)
		}
	}
	time.Sleep(300 * time.Millisecond) // the last requests read
	leaked := int(requests.Load())
	share, gone := float64(inForeign)/float64(elapsed), float64(absent)/float64(elapsed)
	t.Logf("%d deletions in %v (%.0f%% of the time in them, the table absent %.0f%%), each restored within %v; %d restores in %d reports; the tenant dialled %d times, %d connected, %d requests reached the server",
		deleted, elapsed.Round(time.Millisecond), 100*share, 100*gone, slowest, restored, len(reports), d[0], d[1], leaked)
	if restored != deleted {
		t.Errorf("%d restores reported for %d deletions", restored, deleted)
	}
	if most := reportRate.burst + int(elapsed/reportRate.gap) + 2; len(reports) > most {
		t.Errorf("%d reports, want at most %d", len(reports), most)
	}
	for i, r := range reports {
		if (i < reportRate.burst) != (r.Count == 1 && !r.Throttled) {
			t.Errorf("report %d: %+v; want the first %d alone, then summaries", i, r, reportRate.burst)
		}
	}
	// Each restore is bounded above (100 ms); on a loaded machine the
	// restores themselves take a share of the time, so the bound is the
	// time the table was seen absent, not only the deleting transactions.
	if d[0] < 50 || float64(leaked) > (gone+0.1)*float64(d[0]) {
		t.Errorf("%d of the tenant's %d connections carried their request to the server, want at most %.0f%% (the time the table was absent, plus 10%%)",
			leaked, d[0], 100*(gone+0.1))
	}
}

// dialLoop connects to addr as socket owner uid, from a thread in ns, and
// writes a byte on every connection until stop is closed; it returns the
// attempts and the connections made.
func dialLoop(t *testing.T, ns *testNetns, uid int, addr string, stop <-chan struct{}) (out [2]int) {
	ns.Do(t, func() {
		unix.Setfsuid(uid) // this thread's new sockets are uid's
		defer unix.Setfsuid(0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			out[0]++
			c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond)
			if err == nil {
				out[1]++
				_, _ = c.Write([]byte("x"))
				c.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return out
}

// TestSpareRestore: the spare batch rebuilds a deleted table with the
// cgroup ids current at the restore, not those of the Apply it was made
// for, and leaves a table that exists alone.
func TestSpareRestore(t *testing.T) {
	ns := newNetns(t, false)
	m := ns.manager(t)
	m.mu.Lock()
	m.watching = true // spares are made for a watched Manager only
	m.mu.Unlock()
	if err := m.Apply(forwardedSpec(), sampleIDs); err != nil {
		t.Fatal(err)
	}
	waitSpare(t, m)
	if err := m.SetCgroupIDs(nftspec.CgroupIDs{"batch.slice": 1<<40 + 99, "egressfw.slice/egressfw-webhooks.slice": 1<<40 + 7}); err != nil {
		t.Fatal(err)
	}
	want := blocks(ns.nft(t, "list", "table", "inet", "egressfw"))
	if !strings.Contains(strings.Join(want, "\n"), fmt.Sprint(uint64(1<<40+99))) {
		t.Fatal("the new cgroup id is not in the table")
	}
	restore := func() (bool, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.restoreFromSpare()
	}
	if done, err := restore(); done || err != nil {
		t.Fatalf("with the table in place: restoreFromSpare() = %v, %v; want false, nil", done, err)
	}
	ns.nft(t, "delete", "table", "inet", "egressfw")
	if done, err := restore(); !done || err != nil {
		t.Fatalf("with the table gone: restoreFromSpare() = %v, %v; want true, nil", done, err)
	}
	if have := blocks(ns.nft(t, "list", "table", "inet", "egressfw")); !slices.Equal(have, want) {
		t.Errorf("table rebuilt from the spare:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
}

// waitSpare waits until the spare batch of the applied spec is ready.
func waitSpare(t testing.TB, m *Manager) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m.mu.Lock()
		ready := m.spare != nil && m.spare.spec == m.spec
		m.mu.Unlock()
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare batch within 10s of Apply")
		}
	}
}

// TestWatchRestoreKeepsUntouched: a restore after a transaction that
// flushed one tenant chain and deleted a rule of another rewrites those two
// and the base chains, and keeps every chain no one touched (same rule
// handles), which is what makes it fast at 1,000 tenants; the table ends
// as Apply left it. Lost notifications would make it rewrite everything.
func TestWatchRestoreKeepsUntouched(t *testing.T) {
	ns, m, got := watching(t, forwardedSpec(), sampleIDs)
	want, before := listWithHandles(t, ns, "egressfw")
	ns.nftScript(t, fmt.Sprintf("flush chain inet egressfw tenant_2\ndelete rule inet egressfw forward_3 handle %s\n",
		handleOf(t, ns, "forward_3", "goto deny")))
	select {
	case r := <-got:
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no restore within 5s")
	}
	have, after := listWithHandles(t, ns, "egressfw")
	if !slices.Equal(blocks(have), blocks(want)) {
		t.Errorf("table after the restore:\n%s\nwant:\n%s", have, want)
	}
	for _, name := range matching(t, after, []string{"tenant_1", "tenant_3", "forward_2", "input_3", rules.ChainDeny}) {
		if !slices.Equal(after[name], before[name]) {
			t.Errorf("chain %s untouched by the change was rewritten: handles %v -> %v", name, before[name], after[name])
		}
	}
	for _, name := range matching(t, after, []string{"tenant_2", "forward_3", rules.ChainOutput}) {
		if len(after[name]) > 0 && slices.Equal(after[name], before[name]) {
			t.Errorf("chain %s was not rewritten", name)
		}
	}

	m.mu.Lock()
	m.vouch(&changes{table: true, overflow: true})
	forgot := m.texts == nil && !m.vouched
	m.mu.Unlock()
	if !forgot {
		t.Error("after lost notifications the memory of programmed chains is still trusted")
	}
}

// TestWatchDuringOwnCommits: egressfw's own commits leave the notification
// group while they run; a table deleted by another program at that moment
// (here: while a 1,000-tenant Apply commits) is still put back, either
// seen or found in the generations around the commit. The Apply itself
// succeeds whenever the deletion lands.
func TestWatchDuringOwnCommits(t *testing.T) {
	one, oneIDs := benchSpec(1)
	many, manyIDs := benchSpec(1000)
	ns, m, got := watching(t, one, oneIDs)
	other, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	spec, ids := one, oneIDs // in force
	for round := 0; round < 6; round++ {
		next, nextIDs := many, manyIDs
		if round%2 == 1 {
			next, nextIDs = one, oneIDs
		}
		applied := make(chan error, 1)
		go func() { applied <- m.Apply(next, nextIDs) }()
		time.Sleep(time.Duration(5+round*10) * time.Millisecond)
		other.DelTable(&nftables.Table{Name: spec.Table, Family: nftables.TableFamilyINet})
		if err := other.Flush(); err != nil && !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("round %d: delete table: %v", round, err)
		}
		// An Apply that meets the deleted table half way builds it anew.
		if err := <-applied; err != nil {
			t.Fatalf("round %d: apply: %v", round, err)
		}
		spec, ids = next, nextIDs
		want, err := rules.Render(spec, ids)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			if out, err := ns.Cmd("nft", "list", "table", "inet", "egressfw").Output(); err == nil &&
				slices.Equal(blocks(string(out)), blocks(want)) {
				break
			}
			select {
			case r := <-got:
				t.Logf("round %d: restore %+v", round, r)
			case <-deadline:
				t.Fatalf("round %d: the table is not what Apply installed 10s after another program deleted it", round)
			}
		}
		for len(got) > 0 {
			t.Logf("round %d: restore %+v", round, <-got)
		}
	}
}

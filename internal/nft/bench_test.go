package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
)

// benchSpec has n tenants, each with a cgroup (and its id), a uid and an
// allow_direct entry, so every rule shape is present n times.
func benchSpec(n int) (nftspec.Spec, nftspec.CgroupIDs) {
	s := nftspec.DefaultSpec()
	ids := nftspec.CgroupIDs{}
	for i := 1; i <= n; i++ {
		cg := fmt.Sprintf("bench.slice/t%d.service", i)
		s.Tenants = append(s.Tenants, nftspec.Tenant{
			Name: fmt.Sprintf("t%d", i), Slot: uint32(i), ListenerPort: uint16(20000 + i),
			Cgroups: []string{cg}, UIDs: []uint32{uint32(100000 + i)},
			AllowDirect: []nftspec.Direct{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Ports: []uint16{53}, Proto: "udp"}},
		})
		ids[cg] = 1<<40 + uint64(i)
	}
	return s, ids
}

// BenchmarkApply measures in-place table replacements (routing already in
// place, as on every reload after the first):
//
//   - tenants=N: the same N-tenant spec re-applied;
//   - 1<->1000: a reload to 1000 tenants from 1, then back to 1, each
//     iteration one of the two, alternating; ns/op is the mean of both,
//     ms/to-1000 and ms/to-1 split it;
//   - 1000/one-changed: 1000 tenants where one tenant's allow_direct
//     changes on every Apply.
func BenchmarkApply(b *testing.B) {
	type step struct {
		name string
		spec nftspec.Spec
		ids  nftspec.CgroupIDs
	}
	bench := func(name string, n int) step {
		s, ids := benchSpec(n)
		return step{name, s, ids}
	}
	many := bench("1000", 1000)
	changed := many
	changed.name = "1000-changed"
	changed.spec.Tenants = slices.Clone(many.spec.Tenants)
	changed.spec.Tenants[499].AllowDirect = []nftspec.Direct{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Proto: "tcp"}}
	cases := []struct {
		name  string
		steps []step // applied in turn, the first one also before the timer starts
	}{
		{"tenants=1", []step{bench("1", 1)}},
		{"tenants=100", []step{bench("100", 100)}},
		{"tenants=1000", []step{many}},
		{"1<->1000", []step{bench("1", 1), many}},
		{"1000/one-changed", []step{many, changed}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ns := newNetns(b, false)
			m := ns.manager(b)
			if err := m.Apply(c.steps[0].spec, c.steps[0].ids); err != nil {
				b.Fatal(err)
			}
			spent := make([]time.Duration, len(c.steps))
			count := make([]int, len(c.steps))
			i := 0
			b.ResetTimer()
			for b.Loop() {
				i = (i + 1) % len(c.steps)
				start := time.Now()
				if err := m.Apply(c.steps[i].spec, c.steps[i].ids); err != nil {
					b.Fatal(err)
				}
				spent[i] += time.Since(start)
				count[i]++
			}
			for i, s := range c.steps {
				if len(c.steps) > 1 && count[i] > 0 {
					b.ReportMetric(float64(spent[i].Microseconds())/1e3/float64(count[i]), "ms/to-"+s.name)
				}
			}
		})
	}
}

// BenchmarkSetCgroupIDs measures re-matching one re-created cgroup (one
// element out, one in) with 1000 tenants installed.
func BenchmarkSetCgroupIDs(b *testing.B) {
	ns := newNetns(b, false)
	m := ns.manager(b)
	spec, ids := benchSpec(1000)
	if err := m.Apply(spec, ids); err != nil {
		b.Fatal(err)
	}
	next := 1 << 41
	b.ResetTimer()
	for b.Loop() {
		next++
		ids["bench.slice/t500.service"] = uint64(next)
		if err := m.SetCgroupIDs(ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestore measures the time from another process's change to
// egressfw's table (made on a socket of its own in the namespace) to the
// watch's report that the table is back, for 1 and 1,000 tenants:
//
//   - delete-table: `nft delete table inet egressfw` (also what `nft flush
//     ruleset` and `systemctl reload nftables` do to it): rebuilt whole,
//     from the spare batch (spare.go);
//   - flush-chain: one tenant's chain flushed: the table rewritten in place.
//
// ms/restore is the watch's own figure (Restore.Took, from reading the
// change to the end of the repair); ns/op adds the foreign commit and the
// notification's delivery; ms/foreign-commit is how long the other
// program's transaction took to be acknowledged (deleting a base chain
// waits for an RCU grace period, and the restore cannot commit before the
// kernel is done with it).
func BenchmarkRestore(b *testing.B) {
	saved := reportRate
	reportRate.burst = 1 << 30 // every restore reported on its own
	b.Cleanup(func() { reportRate = saved })
	for _, n := range []int{1, 1000} {
		for _, change := range []string{"delete-table", "flush-chain"} {
			b.Run(fmt.Sprintf("tenants=%d/%s", n, change), func(b *testing.B) {
				spec, ids := benchSpec(n)
				ns, m, got := watching(b, spec, ids)
				waitSpare(b, m)
				other, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
				if err != nil {
					b.Fatal(err)
				}
				table := &nftables.Table{Name: spec.Table, Family: nftables.TableFamilyINet}
				var took, foreign time.Duration
				b.ResetTimer()
				for b.Loop() {
					if change == "delete-table" {
						other.DelTable(table)
					} else {
						other.FlushChain(&nftables.Chain{Table: table, Name: rules.TenantChainName(uint32(n))})
					}
					start := time.Now()
					if err := other.Flush(); err != nil {
						b.Fatal(err)
					}
					foreign += time.Since(start)
					r := <-got
					if r.Err != nil {
						b.Fatal(r.Err)
					}
					took += r.Took
				}
				b.ReportMetric(float64(took.Microseconds())/1e3/float64(b.N), "ms/restore")
				b.ReportMetric(float64(foreign.Microseconds())/1e3/float64(b.N), "ms/foreign-commit")
			})
		}
	}
}

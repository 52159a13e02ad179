package nft

import (
	"fmt"
	"net/netip"
	"testing"
)

// benchSpec has n tenants, each with a cgroup (and its id), a uid and an
// allow_direct entry, so every rule shape is present n times.
func benchSpec(n int) (Spec, CgroupIDs) {
	s := DefaultSpec()
	ids := CgroupIDs{}
	for i := 1; i <= n; i++ {
		cg := fmt.Sprintf("bench.slice/t%d.service", i)
		s.Tenants = append(s.Tenants, Tenant{
			Name: fmt.Sprintf("t%d", i), Slot: uint32(i), ListenerPort: uint16(20000 + i),
			Cgroups: []string{cg}, UIDs: []uint32{uint32(100000 + i)},
			AllowDirect: []Direct{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Ports: []uint16{53}, Proto: "udp"}},
		})
		ids[cg] = 1<<40 + uint64(i)
	}
	return s, ids
}

// BenchmarkApply measures a full atomic table replacement (routing already
// in place, as on every reload after the first).
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			ns := newNetns(b, false)
			m := ns.manager(b)
			spec, ids := benchSpec(n)
			if err := m.Apply(spec, ids); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := m.Apply(spec, ids); err != nil {
					b.Fatal(err)
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

package admission

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
)

// fill enters sh until refused and returns how many slots it took and why
// it was refused.
func fill(p *Pool, sh *Share) (int, string) {
	for n := 0; ; n++ {
		if over := p.Enter(sh); over != "" {
			return n, over
		}
	}
}

// TestPoolBusyTenantsLeaveTheOthersTheirReserve: tenants that take all
// they can, in turn, never take the slots reserved for the others.
func TestPoolBusyTenantsLeaveTheOthersTheirReserve(t *testing.T) {
	def := config.Default().Limits
	tests := []struct {
		name    string
		max     int
		caps    map[string]int
		busy    []string // fill in this order
		want    map[string]int
		wantWhy map[string]string
	}{
		{"defaults, three tenants, two busy", def.MaxConnections,
			map[string]int{"a": def.MaxConnectionsPerTenant, "b": def.MaxConnectionsPerTenant, "c": def.MaxConnectionsPerTenant},
			[]string{"a", "b", "c"}, map[string]int{"a": 4096, "b": 2731, "c": 1365},
			map[string]string{"a": OverTenant, "b": OverPool, "c": OverPool}},
		{"default peek caps, three tenants", def.MaxPeeking,
			map[string]int{"a": def.MaxPeekingPerTenant, "b": def.MaxPeekingPerTenant, "c": def.MaxPeekingPerTenant},
			[]string{"a", "b", "c"}, map[string]int{"a": 512, "b": 342, "c": 170},
			map[string]string{"a": OverTenant, "b": OverPool, "c": OverPool}},
		{"one tenant alone uses the whole cap", 100, map[string]int{"a": 100},
			[]string{"a"}, map[string]int{"a": 100}, map[string]string{"a": OverTenant}},
		{"two tenants: the first borrows all but the second's reserve", 100, map[string]int{"a": 100, "b": 100},
			[]string{"a", "b"}, map[string]int{"a": 75, "b": 25}, map[string]string{"a": OverPool, "b": OverPool}},
		{"ten tenants, caps as large as the pool", 100, caps(10, 100),
			[]string{"t0", "t1", "t2", "t9"}, map[string]int{"t0": 55, "t1": 5, "t2": 5, "t9": 5},
			map[string]string{"t0": OverPool, "t1": OverPool}},
		{"explicit small cap bounds the reserve", 100, map[string]int{"a": 3, "b": 100},
			[]string{"a", "b"}, map[string]int{"a": 3, "b": 97}, map[string]string{"a": OverTenant, "b": OverPool}},
		{"more tenants than slots: one reserved each, the cap grows to two per tenant", 4, caps(10, 2),
			[]string{"t0", "t1", "t2"}, map[string]int{"t0": 2, "t1": 2, "t2": 2},
			map[string]string{"t0": OverTenant, "t2": OverTenant}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool()
			shares := p.Configure(tc.max, tc.caps)
			for _, name := range tc.busy {
				n, why := fill(p, shares[name])
				if n != tc.want[name] {
					t.Errorf("tenant %s took %d slots, want %d", name, n, tc.want[name])
				}
				if w := tc.wantWhy[name]; w != "" && why != w {
					t.Errorf("tenant %s refused for %q, want %q", name, why, w)
				}
			}
			if p.cur > p.max {
				t.Errorf("pool holds %d of %d", p.cur, p.max)
			}
		})
	}
}

func caps(n, c int) map[string]int {
	m := map[string]int{}
	for i := range n {
		m["t"+string(rune('0'+i))] = c
	}
	return m
}

// TestPoolReserveAlwaysAvailable: whatever the others do (random enters,
// leaves and reloads), a tenant below its reserve is never refused (once
// connections above a lowered cap have drained), and no slot is granted
// past a cap.
func TestPoolReserveAlwaysAvailable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := NewPool()
	names := []string{"a", "b", "c", "d"}
	shares := p.Configure(40, map[string]int{"a": 40, "b": 40, "c": 40, "d": 3})
	for step := range 100000 {
		if step%5000 == 0 { // a reload: caps change, the counts stay
			shares = p.Configure(40+r.IntN(20)-10, map[string]int{"a": 40, "b": 10 + r.IntN(30), "c": 40, "d": 3})
		}
		sh := shares[names[r.IntN(len(names))]]
		if r.IntN(2) == 0 && sh.cur > 0 {
			p.Leave(sh)
			continue
		}
		below := sh.cur < sh.reserve && p.cur+p.unused <= p.max
		over := p.Enter(sh)
		if over != "" && below {
			t.Fatalf("step %d: a tenant below its reserve (%d of %d) was refused (%s): pool %d of %d, unused %d",
				step, sh.cur, sh.reserve, over, p.cur, p.max, p.unused)
		}
		if over == "" && (p.cur > p.max || sh.cur > sh.max) {
			t.Fatalf("step %d: admitted past a cap: pool %d of %d, tenant %d of %d", step, p.cur, p.max, sh.cur, sh.max)
		}
		unused := 0
		for _, s := range shares {
			unused += max(0, s.reserve-s.cur)
		}
		if unused != p.unused {
			t.Fatalf("step %d: unused reserve %d, recount %d", step, p.unused, unused)
		}
	}
}

// TestPoolKeepsCountsAcrossReload: a reload keeps each tenant's count; a
// removed tenant's live connections still count against the pool until
// they leave.
func TestPoolKeepsCountsAcrossReload(t *testing.T) {
	p := NewPool()
	shares := p.Configure(10, map[string]int{"a": 10, "b": 10})
	a, b := shares["a"], shares["b"]
	for range 4 {
		p.Enter(a)
		p.Enter(b)
	}
	shares = p.Configure(10, map[string]int{"a": 10})
	if shares["a"] != a || a.cur != 4 || p.cur != 8 {
		t.Fatalf("after reload: a %+v (same share %v), pool %d; want a.cur 4, pool 8", a, shares["a"] == a, p.cur)
	}
	if n, _ := fill(p, a); n != 2 {
		t.Fatalf("a took %d more, want 2 (b's 4 still count)", n)
	}
	for range 4 {
		p.Leave(b)
	}
	if n, _ := fill(p, a); n != 4 {
		t.Fatalf("a took %d more after b's connections ended, want 4", n)
	}
}

// TestPoolManyTenantsKeepTheirReserve: with the default peek caps, two busy
// tenants never take a third tenant's first slot, whatever the tenant count
// up to the slot limit: the reserve is at least one slot per tenant, and
// the cap grows to two slots per tenant when max / 2 tenants would leave
// them none (513 tenants on with max_peeking = 1024).
func TestPoolManyTenantsKeepTheirReserve(t *testing.T) {
	def := config.Default().Limits
	for _, tc := range []struct {
		name            string
		max, perTenant  int
		tenants         int
		wantA, wantB    int // slots the two busy tenants take, in turn
		wantCap         int // the pool's effective cap
		wantThirdFirsts int // further tenants that still get their first slot
	}{
		{"peek, 3 tenants", def.MaxPeeking, def.MaxPeekingPerTenant, 3, 512, 342, 1024, 1},
		{"peek, 512 tenants", def.MaxPeeking, def.MaxPeekingPerTenant, 512, 512, 2, 1024, 510},
		{"peek, 513 tenants", def.MaxPeeking, def.MaxPeekingPerTenant, 513, 512, 3, 1026, 511},
		{"peek, 1000 tenants", def.MaxPeeking, def.MaxPeekingPerTenant, 1000, 512, 490, 2000, 998},
		{"peek, 4095 tenants (slot limit)", def.MaxPeeking, def.MaxPeekingPerTenant, 4095, 512, 512, 8190, 4093},
		{"connections, 4095 tenants: the cap holds two each already", def.MaxConnections, def.MaxConnectionsPerTenant, 4095, 4096, 3, 8192, 4093},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := make([]string, tc.tenants)
			caps := make(map[string]int, tc.tenants)
			for i := range names {
				names[i] = fmt.Sprintf("t%04d", i)
				caps[names[i]] = tc.perTenant
			}
			p := NewPool()
			shares := p.Configure(tc.max, caps)
			if p.max != tc.wantCap {
				t.Errorf("effective cap %d, want %d", p.max, tc.wantCap)
			}
			a, _ := fill(p, shares[names[0]])
			b, _ := fill(p, shares[names[1]])
			if a != tc.wantA || b != tc.wantB {
				t.Errorf("the busy tenants took %d and %d slots, want %d and %d", a, b, tc.wantA, tc.wantB)
			}
			firsts := 0
			for _, n := range names[2:] {
				if p.Enter(shares[n]) == "" {
					firsts++
				}
			}
			if firsts != tc.wantThirdFirsts {
				t.Errorf("%d of the %d other tenants got their first slot, want %d", firsts, tc.tenants-2, tc.wantThirdFirsts)
			}
			if p.cur > p.max {
				t.Errorf("pool holds %d of %d", p.cur, p.max)
			}
		})
	}
}

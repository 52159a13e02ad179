package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestHostRanges: the kernel's local routes (an AnyIP "local 10.99.0.0/16
// dev lo", a routed /64) make every address in them the host's, so
// internal whatever the overrides, in every embedded form too.
func TestHostRanges(t *testing.T) {
	c := mustClassifier(t, nil, []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "10.99.0.0/16"})
	c.SetHostRanges(append(prefixes([]string{
		"10.99.0.0/16",         // AnyIP range over a public_cidrs override
		"198.51.100.64/26",     // a public block the host answers for
		"198.51.100.128/26",    // adjacent to the one above: merged
		"203.0.113.7/32",       // an interface address
		"2001:db8:aa::/64",     // IPv6 AnyIP
		"::ffff:192.0.2.0/120", // IPv4-mapped form of 192.0.2.0/24
	}), netip.PrefixFrom(netip.MustParseAddr("fe80::1%eth0"), 128))) // zone dropped
	runClassCases(t, c, []classCase{
		{"10.99.0.0", true, "10.99.0.0 is an address of this host"},
		{"10.99.200.7", true, "10.99.200.7 is an address of this host"},
		{"10.99.255.255", true, "is an address of this host"},
		{"10.100.0.0", true, "private-use (RFC 1918)"},
		{"198.51.100.63", false, "in public_cidrs 198.51.100.0/24"},
		{"198.51.100.64", true, "is an address of this host"},
		{"198.51.100.128", true, "is an address of this host"},
		{"198.51.100.191", true, "is an address of this host"},
		{"198.51.100.192", false, "in public_cidrs 198.51.100.0/24"},
		{"203.0.113.7", true, "is an address of this host"},
		{"203.0.113.8", false, "in public_cidrs 203.0.113.0/24"},
		{"192.0.2.77", true, "is an address of this host"},
		{"2001:db8:aa::1", true, "2001:db8:aa::1 is an address of this host"},
		{"2001:db8:aa:0:ffff:ffff:ffff:ffff", true, "is an address of this host"},
		{"2001:db8:aa:1::", false, "in public_cidrs 2001:db8::/32"},
		{"fe80::1", true, "is an address of this host"},
		{"::ffff:10.99.3.4", true, "embeds 10.99.3.4, an address of this host"},
		{"64:ff9b::a63:304", true, "embeds 10.99.3.4, an address of this host"},
		{"2002:a63:304::1", true, "embeds 10.99.3.4, an address of this host"},
		// An IPv6 range never captures IPv4 space, whose IPv6 form is ::ffff:0:0/96.
		{"8.8.8.8", false, "is public"},
	})
	t.Run("an IPv6 range does not capture IPv4 addresses", func(t *testing.T) {
		c := mustClassifier(t, nil, nil)
		c.SetHostRanges(prefixes([]string{"::/64"}))
		if got := c.Classify(netip.MustParseAddr("8.8.8.8")); got.Internal {
			t.Fatalf("local route ::/64 made 8.8.8.8 internal: %s", got.Reason())
		}
	})
	t.Run("replaced by the next update", func(t *testing.T) {
		c.SetHostRanges(prefixes([]string{"203.0.113.7/32"}))
		if got := c.Classify(netip.MustParseAddr("10.99.0.1")); got.Source == SourceHost {
			t.Fatalf("after the route went: %s", got.Reason())
		}
	})
}

// TestHostSetMatchesReference compares the merged, binary-searched set
// with netip.Prefix.Contains over the raw list, for random nested,
// overlapping and adjacent prefixes and the addresses around their edges.
func TestHostSetMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var ps []netip.Prefix
		var probes []netip.Addr
		for range 1 + rng.IntN(40) {
			var p netip.Prefix
			if rng.IntN(2) == 0 {
				a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
				p = netip.PrefixFrom(a, 14+rng.IntN(19)).Masked()
			} else {
				a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(4)), byte(rng.IntN(256)), 15: byte(rng.IntN(256))})
				p = netip.PrefixFrom(a, 30+rng.IntN(99)).Masked()
			}
			ps = append(ps, p)
			first, last := p.Addr(), lastAddr(p)
			probes = append(probes, first, last, first.Prev(), last.Next())
		}
		h := newHostSet(ps)
		for _, a := range probes {
			if !a.IsValid() {
				continue
			}
			want := false
			for _, p := range ps {
				want = want || p.Contains(a)
			}
			if got := h.has(a); got != want {
				t.Fatalf("round %d: has(%s) = %v, want %v; prefixes %v", round, a, got, want, ps)
			}
		}
	}
}

func TestHostSetEdges(t *testing.T) {
	h := newHostSet(prefixes([]string{"255.255.255.255/32", "0.0.0.0/32", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", "::/128"}))
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"255.255.255.255", true}, {"0.0.0.0", true}, {"0.0.0.1", false}, {"255.255.255.254", false},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"::", true}, {"::1", false},
	} {
		if got := h.has(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("has(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// BenchmarkClassifyHostRanges shows the host lookup stays logarithmic: a
// public address classified against 10 and 100,000 host ranges.
func BenchmarkClassifyHostRanges(b *testing.B) {
	for _, n := range []int{10, 100000} {
		var ps []netip.Prefix
		for i := range n {
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
		}
		c := mustClassifier(b, nil, nil)
		c.SetHostRanges(ps)
		a := netip.MustParseAddr("10.0.0.0").Next()
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Classify(a)
			}
		})
	}
}

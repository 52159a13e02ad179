package policy

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

type classCase struct {
	addr     string
	internal bool
	reason   string // substring of Reason()
}

func runClassCases(t *testing.T, c *Classifier, cases []classCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			got := c.Classify(a)
			if got.Internal != tc.internal {
				t.Errorf("Classify(%s).Internal = %v, want %v (%s)", a, got.Internal, tc.internal, got.Reason())
			}
			if r := got.Reason(); !strings.Contains(r, tc.reason) {
				t.Errorf("Classify(%s).Reason() = %q, want it to contain %q", a, r, tc.reason)
			}
		})
	}
}

func mustClassifier(t testing.TB, internal, public []string) *Classifier {
	t.Helper()
	c, err := NewClassifier(prefixes(internal), prefixes(public))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func prefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestClassifyRegistryIPv4(t *testing.T) {
	runClassCases(t, mustClassifier(t, nil, nil), []classCase{
		{"0.0.0.0", true, `0.0.0.0 is "this host on this network" (RFC 1122)`},
		{"0.0.0.1", true, `"this network" (RFC 791)`},
		{"0.255.255.255", true, `"this network" (RFC 791)`},
		{"1.0.0.0", false, "1.0.0.0 is public"},
		{"8.8.8.8", false, "is public"},
		{"9.255.255.255", false, "is public"},
		{"10.0.0.0", true, "private-use (RFC 1918)"},
		{"10.20.0.10", true, "10.20.0.10 is private-use (RFC 1918)"},
		{"10.255.255.255", true, "private-use (RFC 1918)"},
		{"11.0.0.0", false, "is public"},
		{"100.63.255.255", false, "is public"},
		{"100.64.0.0", true, "shared address space (RFC 6598)"},
		{"100.127.255.255", true, "shared address space (RFC 6598)"},
		{"100.128.0.0", false, "is public"},
		{"126.255.255.255", false, "is public"},
		{"127.0.0.1", true, "loopback (RFC 1122)"},
		{"127.255.255.255", true, "loopback (RFC 1122)"},
		{"128.0.0.0", false, "is public"},
		{"169.253.255.255", false, "is public"},
		{"169.254.0.0", true, "link-local (RFC 3927)"},
		{"169.254.169.254", true, "169.254.169.254 is link-local (RFC 3927)"},
		{"169.254.255.255", true, "link-local (RFC 3927)"},
		{"169.255.0.0", false, "is public"},
		{"172.15.255.255", false, "is public"},
		{"172.16.0.0", true, "private-use (RFC 1918)"},
		{"172.31.255.255", true, "private-use (RFC 1918)"},
		{"172.32.0.0", false, "is public"},
		{"191.255.255.255", false, "is public"},
		{"192.0.0.0", true, "IPv4 service continuity prefix (RFC 7335)"},
		{"192.0.0.7", true, "IPv4 service continuity prefix (RFC 7335)"},
		{"192.0.0.8", true, "IPv4 dummy address (RFC 7600)"},
		{"192.0.0.9", false, "Port Control Protocol anycast (RFC 7723), globally reachable"},
		{"192.0.0.10", false, "Traversal Using Relays around NAT anycast (RFC 8155)"},
		{"192.0.0.11", true, "IETF protocol assignments (RFC 6890)"},
		{"192.0.0.170", true, "NAT64/DNS64 discovery (RFC 8880)"},
		{"192.0.0.171", true, "NAT64/DNS64 discovery (RFC 8880)"},
		{"192.0.0.172", true, "IETF protocol assignments (RFC 6890)"},
		{"192.0.0.255", true, "IETF protocol assignments (RFC 6890)"},
		{"192.0.1.0", false, "is public"},
		{"192.0.2.0", true, "documentation (TEST-NET-1) (RFC 5737)"},
		{"192.0.2.255", true, "documentation (TEST-NET-1) (RFC 5737)"},
		{"192.0.3.0", false, "is public"},
		{"192.31.196.1", false, "AS112-v4 (RFC 7535), globally reachable"},
		{"192.52.193.1", false, "AMT (RFC 7450), globally reachable"},
		{"192.88.99.1", true, "deprecated 6to4 relay anycast (RFC 7526)"},
		{"192.88.99.2", true, "6a44-relay anycast (RFC 6751)"},
		{"192.167.255.255", false, "is public"},
		{"192.168.0.0", true, "private-use (RFC 1918)"},
		{"192.168.255.255", true, "private-use (RFC 1918)"},
		{"192.169.0.0", false, "is public"},
		{"192.175.48.1", false, "direct delegation AS112 service (RFC 7534), globally reachable"},
		{"198.17.255.255", false, "is public"},
		{"198.18.0.0", true, "benchmarking (RFC 2544)"},
		{"198.19.255.255", true, "benchmarking (RFC 2544)"},
		{"198.20.0.0", false, "is public"},
		{"198.51.100.7", true, "documentation (TEST-NET-2) (RFC 5737)"},
		{"203.0.113.255", true, "documentation (TEST-NET-3) (RFC 5737)"},
		{"223.255.255.255", false, "is public"},
		{"224.0.0.0", true, "multicast (RFC 5771)"},
		{"239.255.255.255", true, "multicast (RFC 5771)"},
		{"240.0.0.0", true, "reserved (RFC 1112)"},
		{"255.255.255.254", true, "reserved (RFC 1112)"},
		{"255.255.255.255", true, "limited broadcast (RFC 919)"},
	})
}

func TestClassifyRegistryIPv6(t *testing.T) {
	runClassCases(t, mustClassifier(t, nil, nil), []classCase{
		{"::", true, ":: is unspecified (RFC 4291)"},
		{"::1", true, "::1 is loopback (RFC 4291)"},
		{"64:ff9b::808:808", false, "embeds 8.8.8.8, public"},
		{"100::1", true, "discard-only (RFC 6666)"},
		{"100::ffff:ffff:ffff:ffff", true, "discard-only (RFC 6666)"},
		{"100:0:0:1::1", true, "dummy IPv6 prefix (RFC 9780)"},
		{"100:0:0:2::", true, "outside global unicast 2000::/3 (RFC 4291)"},
		{"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "outside global unicast 2000::/3"},
		{"2000::", false, "2000:: is public"},
		{"2001::", true, "Teredo (RFC 4380)"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", true, "Teredo (RFC 4380)"},
		{"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", true, "Teredo (RFC 4380)"},
		{"2001:1::", true, "IETF protocol assignments (RFC 2928)"},
		{"2001:1::1", false, "Port Control Protocol anycast (RFC 7723), globally reachable"},
		{"2001:1::2", false, "Traversal Using Relays around NAT anycast (RFC 8155)"},
		{"2001:1::3", false, "DNS-SD Service Registration Protocol anycast (RFC 9665)"},
		{"2001:1::4", true, "IETF protocol assignments (RFC 2928)"},
		{"2001:2::1", true, "benchmarking (RFC 5180)"},
		{"2001:2:0:ffff:ffff:ffff:ffff:ffff", true, "benchmarking (RFC 5180)"},
		{"2001:2:1::", true, "IETF protocol assignments (RFC 2928)"},
		{"2001:3::1", false, "AMT (RFC 7450), globally reachable"},
		{"2001:4:112::1", false, "AS112-v6 (RFC 7535), globally reachable"},
		{"2001:4:113::", true, "IETF protocol assignments (RFC 2928)"},
		{"2001:10::1", true, "deprecated ORCHID (RFC 4843)"},
		{"2001:20::", false, "ORCHIDv2 (RFC 7343), globally reachable"},
		{"2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", false, "ORCHIDv2 (RFC 7343)"},
		{"2001:30::1", false, "drone remote ID entity tags (RFC 9374), globally reachable"},
		{"2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", false, "drone remote ID entity tags (RFC 9374)"},
		{"2001:40::", true, "IETF protocol assignments (RFC 2928)"},
		{"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", true, "IETF protocol assignments (RFC 2928)"},
		{"2001:200::", false, "is public"},
		{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false, "is public"},
		{"2001:db8::", true, "documentation (RFC 3849)"},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true, "documentation (RFC 3849)"},
		{"2001:db9::", false, "is public"},
		{"2606:4700::1111", false, "is public"},
		{"2620:4f:8000::53", false, "direct delegation AS112 service (RFC 7534), globally reachable"},
		{"2620:4f:8001::", false, "is public"},
		{"3ffe::1", false, "is public"},
		{"3fff::", true, "documentation (RFC 9637)"},
		{"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", true, "documentation (RFC 9637)"},
		{"3fff:1000::", false, "is public"},
		{"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "is public"},
		{"4000::", true, "outside global unicast 2000::/3"},
		{"5f00::1", true, "SRv6 SIDs (RFC 9602)"},
		{"5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "SRv6 SIDs (RFC 9602)"},
		{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "outside global unicast 2000::/3"},
		{"fc00::", true, "unique-local (RFC 4193)"},
		{"fd12:3456::1", true, "unique-local (RFC 4193)"},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "unique-local (RFC 4193)"},
		{"fe80::1", true, "link-local (RFC 4291)"},
		{"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "link-local (RFC 4291)"},
		{"fec0::1", true, "site-local (deprecated) (RFC 3879)"},
		{"ff02::1", true, "multicast (RFC 4291)"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "multicast (RFC 4291)"},
		{"fe80::1%eth0", true, "fe80::1%eth0 is a scoped address"},
		{"2001:4860::1%eth0", true, "is a scoped address"},
	})
}

func TestClassifyEmbedded(t *testing.T) {
	runClassCases(t, mustClassifier(t, nil, nil), []classCase{
		// IPv4-mapped: the embedded address decides.
		{"::ffff:10.0.0.5", true, "::ffff:10.0.0.5 embeds 10.0.0.5, private-use (RFC 1918)"},
		{"::ffff:127.0.0.1", true, "embeds 127.0.0.1, loopback (RFC 1122)"},
		{"::ffff:169.254.169.254", true, "embeds 169.254.169.254, link-local (RFC 3927)"},
		{"::ffff:8.8.8.8", false, "embeds 8.8.8.8, public"},
		{"::ffff:0.0.0.0", true, `embeds 0.0.0.0, "this host on this network"`},
		// IPv4-compatible (deprecated): internal; an internal embedded address is named.
		{"::2", true, `::2 embeds 0.0.0.2, "this network" (RFC 791)`},
		{"::a00:5", true, "::a00:5 embeds 10.0.0.5, private-use (RFC 1918)"},
		{"::7f00:1", true, "embeds 127.0.0.1, loopback"},
		{"::808:808", true, "IPv4-compatible (deprecated) (RFC 4291), embedding 8.8.8.8"},
		// NAT64 well-known prefix: the embedded address decides.
		{"64:ff9b::a00:5", true, "64:ff9b::a00:5 embeds 10.0.0.5, private-use (RFC 1918)"},
		{"64:ff9b::a9fe:a9fe", true, "embeds 169.254.169.254, link-local"},
		{"64:ff9b::7f00:1", true, "embeds 127.0.0.1, loopback"},
		{"64:ff9b::c000:9", false, "embeds 192.0.0.9, Port Control Protocol anycast"},
		{"64:ff9b::808:808", false, "embeds 8.8.8.8, public"},
		{"64:ff9b::1:0:0:808:808", true, "outside global unicast"}, // not in the /96
		// NAT64 local-use prefix: internal, embedded address reported.
		{"64:ff9b:1::808:808", true, "IPv4/IPv6 translation, local-use prefix (RFC 8215), embedding 8.8.8.8"},
		{"64:ff9b:1:ffff::a00:5", true, "embeds 10.0.0.5, private-use (RFC 1918)"},
		// 6to4: 2002:AABB:CCDD::/48 embeds A.B.C.D, which decides.
		{"2002:a00:5::1", true, "2002:a00:5::1 embeds 10.0.0.5, private-use (RFC 1918)"},
		{"2002:c000:204::1", true, "embeds 192.0.2.4, documentation (TEST-NET-1)"},
		{"2002:7f00:1::", true, "embeds 127.0.0.1, loopback"},
		{"2002:808:808::1", false, "embeds 8.8.8.8, public"},
		{"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "embeds 255.255.255.255, limited broadcast"},
	})
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// probe returns the first or last address of e's block that no more
// specific row captures.
func probe(t *testing.T, e *Entry) netip.Addr {
	for _, a := range []netip.Addr{lastAddr(e.Prefix), e.Prefix.Masked().Addr()} {
		if i := registryTable.lookup(a); i >= 0 && &registry[i] == e {
			return a
		}
	}
	t.Fatalf("no probe address selects %s", e.Prefix)
	return netip.Addr{}
}

// TestEveryRegistryEntry checks every table row through an address that
// selects it.
func TestEveryRegistryEntry(t *testing.T) {
	c := mustClassifier(t, nil, nil)
	for i := range registry {
		e := &registry[i]
		t.Run(e.Prefix.String(), func(t *testing.T) {
			a := probe(t, e)
			got := c.Classify(a)
			if got.Embedded.IsValid() {
				// Every embedding row's probe embeds 255.255.255.255.
				if !got.Internal || got.Embedded != netip.MustParseAddr("255.255.255.255") {
					t.Errorf("Classify(%s) = %s, want internal via 255.255.255.255", a, got.Reason())
				}
				return
			}
			if got.Entry != e || got.Internal == e.Global {
				t.Errorf("Classify(%s) = %q, want entry %s (%s) internal=%v", a, got.Reason(), e.Prefix, e.Name, !e.Global)
			}
		})
	}
}

// TestLookupMatchesReference compares the masked table against a plain
// longest-prefix search with netip.Prefix.Contains, around every boundary
// and at random.
func TestLookupMatchesReference(t *testing.T) {
	ref := func(a netip.Addr) int {
		best := -1
		for i, e := range registry {
			if e.Prefix.Contains(a) && (best < 0 || e.Prefix.Bits() > registry[best].Prefix.Bits()) {
				best = i
			}
		}
		return best
	}
	var addrs []netip.Addr
	for _, e := range registry {
		first, last := e.Prefix.Masked().Addr(), lastAddr(e.Prefix)
		addrs = append(addrs, first, last, first.Prev(), last.Next())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		addrs = append(addrs, netip.AddrFrom16(b), netip.AddrFrom4([4]byte(b[:4])))
	}
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		if got, want := registryTable.lookup(a), ref(a); got != want {
			t.Fatalf("lookup(%s) = %d, reference %d", a, got, want)
		}
	}
}

func TestRegistryReturnsCopy(t *testing.T) {
	r := Registry()
	if len(r) != len(registry) {
		t.Fatalf("Registry() has %d entries, want %d", len(r), len(registry))
	}
	r[0].Name = "changed"
	if registry[0].Name == "changed" {
		t.Fatal("Registry() exposes the package's table")
	}
}

func TestClassifyInvalid(t *testing.T) {
	got := mustClassifier(t, nil, nil).Classify(netip.Addr{})
	if !got.Internal || got.Source != SourceInvalid {
		t.Fatalf("Classify(zero Addr) = %+v, want internal, SourceInvalid", got)
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	c := mustClassifier(t, []string{"8.8.0.0/16"}, []string{"198.51.100.0/24"})
	c.SetHostAddrs([]netip.Addr{netip.MustParseAddr("10.0.0.2")})
	if err := c.SetNAT64Prefixes([]netip.Prefix{netip.MustParsePrefix("2001:db8:64::/96")}); err != nil {
		t.Fatal(err)
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("2001:db8:64::a14:a"),
		netip.MustParseAddr("93.184.216.34"),
		netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("2606:4700::1111"),
		netip.MustParseAddr("::ffff:10.0.0.5"),
		netip.MustParseAddr("2002:808:808::1"),
		netip.MustParseAddr("198.51.100.7"),
	}
	n := testing.AllocsPerRun(100, func() {
		for _, a := range addrs {
			_ = c.Classify(a)
		}
	})
	if n != 0 {
		t.Fatalf("Classify allocates %v times per run, want 0", n)
	}
}

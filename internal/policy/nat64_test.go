package policy

import (
	"net/netip"
	"strings"
	"testing"
)

// TestClassifyNAT64Prefixes: an address in one of the operator's NAT64
// prefixes is judged by the IPv4 address in its last 32 bits, whatever the
// outer address's own status, and the reason names the embedded address.
func TestClassifyNAT64Prefixes(t *testing.T) {
	// The lab treats the documentation ranges as public, as test/netns does.
	c := mustClassifier(t, []string{"198.51.100.128/25"}, []string{"2001:db8::/32", "198.51.100.0/24"})
	if err := c.SetNAT64Prefixes(prefixes([]string{"2001:db8:64::/96", "64:ff9b:1:2::/96", "2a00:1450:64::/96"})); err != nil {
		t.Fatal(err)
	}
	c.SetHostAddrs([]netip.Addr{netip.MustParseAddr("10.40.0.1")})
	runClassCases(t, c, []classCase{
		{"2001:db8:64::a14:a", true, "2001:db8:64::a14:a embeds 10.20.0.10 (nat64_prefixes 2001:db8:64::/96), private-use (RFC 1918)"},
		{"2001:db8:64::a9fe:a9fe", true, "embeds 169.254.169.254 (nat64_prefixes 2001:db8:64::/96), link-local"},
		{"2001:db8:64::a83f:8110", true, "embeds 168.63.129.16 (nat64_prefixes 2001:db8:64::/96), Azure WireServer"},
		{"2001:db8:64::7f00:1", true, "embeds 127.0.0.1 (nat64_prefixes 2001:db8:64::/96), loopback"},
		{"2001:db8:64::a28:1", true, "embeds 10.40.0.1 (nat64_prefixes 2001:db8:64::/96), an address of this host"},
		{"2001:db8:64::c633:6481", true, "embeds 198.51.100.129 (nat64_prefixes 2001:db8:64::/96), in internal_cidrs 198.51.100.128/25"},
		// Both public: the outer address's own override is reported.
		{"2001:db8:64::c633:640a", false, "is in public_cidrs 2001:db8::/32, embedding 198.51.100.10 (nat64_prefixes 2001:db8:64::/96)"},
		{"2001:db8:64::808:808", false, "embedding 8.8.8.8 (nat64_prefixes 2001:db8:64::/96)"},
		// Outside the /96 the outer address is judged as before.
		{"2001:db8:64:0:1::a14:a", false, "is in public_cidrs 2001:db8::/32"},
		{"2001:db8:65::a14:a", false, "is in public_cidrs 2001:db8::/32"},
		// A /96 carved from the local-use prefix is judged by its embedded address too.
		{"64:ff9b:1:2::808:808", false, "embeds 8.8.8.8 (nat64_prefixes 64:ff9b:1:2::/96), public"},
		{"64:ff9b:1:2::a00:5", true, "embeds 10.0.0.5 (nat64_prefixes 64:ff9b:1:2::/96), private-use"},
		{"64:ff9b:1:3::808:808", true, "IPv4/IPv6 translation, local-use prefix (RFC 8215)"},
		// A global prefix: without the setting this is an ordinary public address.
		{"2a00:1450:64::a14:a", true, "embeds 10.20.0.10 (nat64_prefixes 2a00:1450:64::/96), private-use"},
		{"2a00:1450:64::808:808", false, "embeds 8.8.8.8"},
	})
	t.Run("cleared", func(t *testing.T) {
		if err := c.SetNAT64Prefixes(nil); err != nil {
			t.Fatal(err)
		}
		if got := c.Classify(netip.MustParseAddr("2001:db8:64::a14:a")); got.Internal {
			t.Fatalf("after clearing nat64_prefixes: %s", got.Reason())
		}
	})
}

func TestSetNAT64PrefixesRejects(t *testing.T) {
	tests := []struct {
		name, prefix string
	}{
		{"IPv4", "10.0.0.0/8"},
		{"IPv4-mapped", "::ffff:10.0.0.0/104"},
		{"not a /96", "2001:db8:64::/64"},
		{"zero prefix", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p netip.Prefix
			if tc.prefix != "" {
				p = netip.MustParsePrefix(tc.prefix)
			}
			err := mustClassifier(t, nil, nil).SetNAT64Prefixes([]netip.Prefix{p})
			if err == nil || !strings.Contains(err.Error(), "is not an IPv6 /96") {
				t.Fatalf("SetNAT64Prefixes(%v) = %v, want an error", p, err)
			}
		})
	}
}

package policy

import (
	"net/netip"
	"sync"
	"testing"
)

func TestClassifyOverridesAndHost(t *testing.T) {
	c := mustClassifier(t,
		[]string{"192.0.2.0/24", "8.8.0.0/16", "198.51.100.128/25", "2001:db8:1::/48"},
		[]string{"192.0.2.0/24", "8.8.8.0/24", "198.51.100.0/24", "10.99.0.0/16", "2001:db8::/32", "64:ff9b:1::/48"},
	)
	c.SetHostAddrs([]netip.Addr{
		netip.MustParseAddr("10.99.0.1"),
		netip.MustParseAddr("198.51.100.3"),
		netip.MustParseAddr("::ffff:203.0.113.9"), // stored unmapped
		netip.MustParseAddr("fe80::2%eth0"),       // stored without zone
		netip.MustParseAddr("2001:db8::5"),
	})
	runClassCases(t, c, []classCase{
		{"192.0.2.10", true, "192.0.2.10 is in internal_cidrs 192.0.2.0/24"}, // equal length: internal wins
		{"8.8.4.4", true, "8.8.4.4 is in internal_cidrs 8.8.0.0/16"},
		{"8.8.8.8", false, "8.8.8.8 is in public_cidrs 8.8.8.0/24"}, // nested: longest wins
		{"198.51.100.7", false, "is in public_cidrs 198.51.100.0/24"},
		{"198.51.100.200", true, "is in internal_cidrs 198.51.100.128/25"},
		{"10.99.1.1", false, "is in public_cidrs 10.99.0.0/16"},
		{"10.98.0.1", true, "private-use (RFC 1918)"},
		{"10.99.0.1", true, "10.99.0.1 is an address of this host"}, // host beats public_cidrs
		{"198.51.100.3", true, "198.51.100.3 is an address of this host"},
		{"203.0.113.9", true, "is an address of this host"},
		{"fe80::2", true, "fe80::2 is an address of this host"},
		{"2001:db8::7", false, "is in public_cidrs 2001:db8::/32"},
		{"2001:db8:1::7", true, "is in internal_cidrs 2001:db8:1::/48"},
		{"2001:db8::5", true, "2001:db8::5 is an address of this host"},
		{"::ffff:10.99.0.1", true, "::ffff:10.99.0.1 embeds 10.99.0.1, an address of this host"},
		{"::ffff:192.0.2.10", true, "embeds 192.0.2.10, in internal_cidrs 192.0.2.0/24"},
		{"64:ff9b::c000:20a", true, "embeds 192.0.2.10, in internal_cidrs 192.0.2.0/24"},
		{"2002:c000:20a::1", true, "embeds 192.0.2.10, in internal_cidrs 192.0.2.0/24"},
		{"64:ff9b::a63:1", true, "embeds 10.99.0.1, an address of this host"},
		{"::ffff:198.51.100.7", false, "embeds 198.51.100.7, in public_cidrs 198.51.100.0/24"},
		{"64:ff9b:1::c633:6407", false, "is in public_cidrs 64:ff9b:1::/48"},
		// A public override of the carrier does not lift the embedded address.
		{"64:ff9b:1::a00:5", true, "embeds 10.0.0.5, private-use (RFC 1918)"},
	})
}

func TestSetOverridesRejectsBadPrefixes(t *testing.T) {
	tests := []struct {
		name             string
		internal, public []netip.Prefix
	}{
		{"zero internal prefix", []netip.Prefix{{}}, nil},
		{"zero public prefix", nil, []netip.Prefix{{}}},
		{"bad length", []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewClassifier(tc.internal, tc.public); err == nil {
				t.Fatal("NewClassifier accepted an invalid prefix")
			}
		})
	}
}

func TestSetHostAddrsSwapsConcurrently(t *testing.T) {
	c := mustClassifier(t, nil, []string{"198.51.100.0/24"})
	a := netip.MustParseAddr("198.51.100.50")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_ = c.Classify(a)
				}
			}
		}()
	}
	for i := range 200 {
		if i%2 == 0 {
			c.SetHostAddrs([]netip.Addr{a})
		} else {
			c.SetHostAddrs(nil)
		}
	}
	close(stop)
	wg.Wait()
	c.SetHostAddrs([]netip.Addr{a})
	if got := c.Classify(a); !got.Internal || got.Source != SourceHost {
		t.Fatalf("after SetHostAddrs(%s): %s", a, got.Reason())
	}
	c.SetHostAddrs(nil)
	if got := c.Classify(a); got.Internal {
		t.Fatalf("after SetHostAddrs(nil): %s", got.Reason())
	}
}

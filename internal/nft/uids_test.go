package nft

import (
	"fmt"
	"testing"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// TestAdjacentUIDRanges: two tenants whose uid ranges touch (…165535 and
// 165536…, as /etc/subuid hands out consecutive users' ranges) are told
// apart at the boundary in the kernel's interval map: each edge uid goes
// to its own tenant's listener, the uids just outside both are no tenant's.
func TestAdjacentUIDRanges(t *testing.T) {
	ns := newNetns(t, true)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{
		{Name: "a", Slot: 1, ListenerPort: 15001, UIDRanges: []nftspec.UIDRange{{First: 100000, Last: 165535}}},
		{Name: "b", Slot: 2, ListenerPort: 15002, UIDs: []uint32{165536}, UIDRanges: []nftspec.UIDRange{{First: 165537, Last: 231071}}},
	}
	if err := ns.manager(t).Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	listeners := transparentListen(t, ns, 15001, 15002)
	for i, tc := range []struct {
		uid  int
		want string
	}{
		{99999, "unanswered"},
		{100000, "intercept 15001"},
		{165535, "intercept 15001"},
		{165536, "intercept 15002"},
		{165537, "intercept 15002"},
		{231071, "intercept 15002"},
		{231072, "unanswered"},
	} {
		t.Run(fmt.Sprint(tc.uid), func(t *testing.T) {
			payload := fmt.Sprintf("uid%d", i)
			got := runClient(t, ns, client{fsuid: tc.uid}, "tcp", "192.0.2.10:80", payload)
			checkOutcome(t, tc.want, "192.0.2.10:80", payload, got, listeners, nil, nil)
		})
	}
}

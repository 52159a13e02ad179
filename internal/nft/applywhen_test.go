package nft

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/nft/rules"
)

// TestApplyWhen: ready runs once the new tenants' chains exist and before
// anything points at them, and an error from it leaves the previous
// ruleset in force, returned as is.
func TestApplyWhen(t *testing.T) {
	one, oneIDs := benchSpec(1)
	three, threeIDs := benchSpec(3)
	errListen := errors.New("listen for tenant \"t3\": address already in use")
	tests := []struct {
		name     string
		readyErr error
	}{
		{name: "ready", readyErr: nil},
		{name: "not ready", readyErr: errListen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t, false)
			m := ns.manager(t)
			if err := m.Apply(one, oneIDs); err != nil {
				t.Fatal(err)
			}
			calls := 0
			err := m.ApplyWhen(three, threeIDs, func() error {
				calls++
				listing := ns.nft(t, "list", "table", "inet", three.Table)
				for _, c := range []string{"chain tenant_2 {", "chain tenant_3 {"} {
					if !strings.Contains(listing, c) {
						t.Errorf("ready called before %s was added", c)
					}
				}
				// Only the old ruleset refers to tenants: slot 1 alone.
				if strings.Contains(listing, "jump tenant_2") || strings.Contains(listing, "0x00000002 : ") {
					t.Errorf("ready called after something pointed at a new tenant:\n%s", listing)
				}
				return tc.readyErr
			})
			if calls != 1 {
				t.Errorf("ready called %d times, want 1", calls)
			}
			if err != tc.readyErr {
				t.Fatalf("ApplyWhen: err = %v, want %v", err, tc.readyErr)
			}
			want, current := three, threeIDs
			if tc.readyErr != nil {
				want, current = one, oneIDs
			}
			rendered, err := rules.Render(want, current)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := listWithHandles(t, ns, want.Table)
			// The refused apply may leave the new chains, unreferenced.
			if !slices.Equal(withoutChains(blocks(got), "tenant_2", "tenant_3"), withoutChains(blocks(rendered), "tenant_2", "tenant_3")) {
				t.Errorf("kernel listing is not the %s ruleset:\n%s", map[bool]string{true: "old", false: "new"}[tc.readyErr != nil], got)
			}
		})
	}
}

func withoutChains(bs []string, names ...string) []string {
	return slices.DeleteFunc(slices.Clone(bs), func(b string) bool {
		for _, n := range names {
			if strings.HasPrefix(b, "chain "+n+" {") {
				return true
			}
		}
		return false
	})
}

package nft

import (
	"maps"
	"testing"
)

// TestInstalledSlots: the slots read back from the kernel are those Apply
// installed, for cgroup, uid and forwarded tenants, also from a table
// another Manager (an earlier egressfw) applied; no table reads as none.
func TestInstalledSlots(t *testing.T) {
	ns := newNetns(t, false)
	m := ns.manager(t)
	if got, err := m.InstalledSlots("egressfw"); err != nil || got != nil {
		t.Fatalf("without a table: InstalledSlots() = %v, %v; want nil, nil", got, err)
	}
	spec := forwardedSpec()
	if err := m.Apply(spec, sampleIDs); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{}
	for _, tn := range spec.Tenants {
		want[tn.Name] = tn.Slot
	}
	if got, err := ns.manager(t).InstalledSlots("egressfw"); err != nil || !maps.Equal(got, want) {
		t.Fatalf("InstalledSlots() = %v, %v; want %v", got, err, want)
	}
	if got, err := m.InstalledSlots("other"); err != nil || got != nil {
		t.Fatalf("of another table name: InstalledSlots() = %v, %v; want nil, nil", got, err)
	}
}

package nft

import (
	"fmt"
	"slices"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// Installed reports whether table inet <table> exists, whoever made it.
func (m *Manager) Installed(table string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tables, err := m.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list inet tables: %w", err)
	}
	return slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == table }), nil
}

// InstalledSlots reads the tenant slots of table inet <table> as an
// egressfw (or the boot guard) left it: each tenant's chain is named after
// its slot (tenant_N) and its intercept rule carries the tenant's name as
// its comment. It returns nil, without error, when the table does not
// exist. A name found in two chains keeps the lower slot; chains without a
// named rule are skipped. The caller decides which of the slots it keeps.
func (m *Manager) InstalledSlots(table string) (map[string]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, err := readInstalled(m.conn, nftables.TableFamilyINet, table)
	if err != nil || !in.exists {
		return nil, err
	}
	var slots []uint32
	for name := range in.chains {
		if slot, ok := rules.TenantSlot(name); ok {
			slots = append(slots, slot)
		}
	}
	slices.Sort(slots)
	out := map[string]uint32{}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	for _, slot := range slots {
		chain := rules.TenantChainName(slot)
		got, err := m.conn.GetRules(t, &nftables.Chain{Name: chain, Table: t})
		if err != nil {
			return nil, fmt.Errorf("read the rules of chain %s of table inet %s: %w", chain, table, err)
		}
		for _, r := range got {
			if name, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && name != "" {
				if _, dup := out[name]; !dup {
					out[name] = slot
				}
				break
			}
		}
	}
	return out, nil
}

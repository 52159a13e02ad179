package nft

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
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

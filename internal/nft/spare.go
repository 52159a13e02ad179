package nft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/egressfw/egressfw/internal/nft/route"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
)

// The spare batch. The common foreign change is the loss of the whole
// table (`nft flush ruleset`, `systemctl reload nftables`, `nft delete
// table`), and rebuilding it spends as long preparing the batch (building
// the ruleset and encoding ~5,000 messages at 1,000 tenants) as the kernel
// spends committing it. While Watch runs, every Apply therefore also
// encodes, in the background, the batch that builds its table from
// nothing, without the elements of the cgroup maps (those change with
// every re-created cgroup; SetCgroupIDs does not invalidate the spare). A
// restore that finds the table gone sends that batch with the current
// cgroup elements spliced in before its end, instead of building one, and
// with them, for container identity, the bridge table built anew with the
// current bindings (few messages: its sets hold the containers).
//
// The batch starts by deleting the table if it exists, so it is correct
// even if someone re-created a table of that name since the check (then it
// is a rebuild, with the transient effects the package doc describes).

// spareBatch builds the table of one Apply from nothing.
type spareBatch struct {
	spec  *nftspec.Spec       // the applied spec it was made for (identity)
	msgs  []mdnetlink.Message // batch begin ... batch end
	texts chainTexts          // what its regular chains print as (see keep.go)
}

// prepareSpare encodes the spare batch for spec in the background and
// keeps it if spec is still the applied one. Called with m.mu held.
func (m *Manager) prepareSpare(spec *nftspec.Spec) {
	if !m.watching || m.spare != nil && m.spare.spec == spec {
		return
	}
	m.spare = nil
	go func() {
		sb, err := encodeSpare(spec)
		if err != nil {
			return // a restore then builds its batch itself
		}
		m.mu.Lock()
		if m.spec == spec {
			m.spare = sb
		}
		m.mu.Unlock()
	}()
}

func encodeSpare(spec *nftspec.Spec) (*spareBatch, error) {
	var msgs []mdnetlink.Message
	q, err := nftables.New(nftables.WithTestDial(func(req []mdnetlink.Message) ([]mdnetlink.Message, error) {
		msgs = append(msgs, req...)
		return []mdnetlink.Message{{Header: mdnetlink.Header{Type: mdnetlink.Error}, Data: make([]byte, 4)}}, nil
	}))
	if err != nil {
		return nil, err
	}
	rs := rules.Build(spec, nil)
	t := &nftables.Table{Name: spec.Table, Family: nftables.TableFamilyINet}
	q.AddTable(t)
	q.DelTable(t)
	if err := program(rs, q, spec.Table, &installed{}, nil); err != nil {
		return nil, err
	}
	if err := q.Flush(); err != nil {
		return nil, err
	}
	if len(msgs) < 3 {
		return nil, errors.New("spare batch: nothing encoded")
	}
	return &spareBatch{spec: spec, msgs: msgs, texts: texts(rs)}, nil
}

// restoreFromSpare rebuilds the applied table with the spare batch if the
// table is gone and the spare is ready; done is false when it did nothing
// (the caller then re-applies). Called with m.mu held.
func (m *Manager) restoreFromSpare() (done bool, err error) {
	sb := m.spare
	if sb == nil || sb.spec != m.spec {
		return false, nil
	}
	tables, err := m.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil || slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == m.spec.Table }) {
		return false, nil
	}
	if err := route.Install(m.nl, *m.routing); err != nil {
		return true, fmt.Errorf("restore: %w", err)
	}
	table := &nftables.Table{Name: m.spec.Table, Family: nftables.TableFamilyINet}
	elems := rules.CgroupElems(m.spec, m.ids)
	for _, l := range m.spec.Levels() {
		set := &nftables.Set{Table: table, Name: rules.CgroupMapName(l), IsMap: true}
		es := make([]nftables.SetElement, 0, len(elems[l]))
		for _, e := range elems[l] {
			es = append(es, e.Elem)
		}
		if err := eachChunk(es, func(c []nftables.SetElement) error { return m.b.Queue().SetAddElements(set, c) }); err != nil {
			return true, fmt.Errorf("restore: %w", err)
		}
	}
	if m.spec.Containers { // the bridge table, rebuilt in the same transaction
		bt := &nftables.Table{Name: m.spec.Table, Family: nftables.TableFamilyBridge}
		m.b.Queue().AddTable(bt)
		m.b.Queue().DelTable(bt)
		if err := m.queueBridge(rules.BuildBridge(m.spec, m.containers), m.spec.Table, true); err != nil {
			return true, fmt.Errorf("restore: %w", err)
		}
	}
	extra, err := m.b.Encode()
	if err != nil {
		return true, fmt.Errorf("restore: %w", err)
	}
	n := len(sb.msgs)
	msgs := make([]mdnetlink.Message, 0, n+len(extra))
	msgs = append(msgs, sb.msgs[:n-1]...)
	if len(extra) >= 3 { // without their own batch begin and end
		msgs = append(msgs, extra[1:len(extra)-1]...)
	}
	msgs = append(msgs, sb.msgs[n-1])
	m.texts = nil
	if err := m.b.CommitMessages(msgs); err != nil {
		return true, fmt.Errorf("restore table inet %s: %w", m.spec.Table, err)
	}
	m.texts = sb.texts
	return true, nil
}

package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Binding updates: SetContainers and what it needs (rules/containers.go says
// what a binding is).

// bridgeDiff returns the element changes from containers old to now (both
// normalised): only the ports whose container or claims changed are looked
// at, so an event costs little with many containers bound.
func bridgeDiff(spec *nftspec.Spec, old, now []nftspec.Container) (del, add map[string][]nftables.SetElement) {
	claimsOld, claimsNow, labelled := rules.ClaimsOf(old), rules.ClaimsOf(now), spec.LabelledSlots()
	byPort := func(cs []nftspec.Container) map[int]*nftspec.Container {
		out := make(map[int]*nftspec.Container, len(cs))
		for i := range cs {
			out[cs[i].Port] = &cs[i]
		}
		return out
	}
	oldBy, nowBy := byPort(old), byPort(now)
	del, add = map[string][]nftables.SetElement{}, map[string][]nftables.SetElement{}
	visit := func(port int) {
		o, n := oldBy[port], nowBy[port]
		if o != nil && n != nil && sameBinding(o, n, labelled) && !claimsChanged(o, claimsOld, claimsNow) {
			return
		}
		before, after := map[string][]nftables.SetElement{}, map[string][]nftables.SetElement{}
		if o != nil {
			rules.BindingElems(before, o, claimsOld, labelled)
		}
		if n != nil {
			rules.BindingElems(after, n, claimsNow, labelled)
		}
		for _, set := range rules.BridgeSetNames {
			d, a := elemChanges(before[set], after[set])
			del[set], add[set] = append(del[set], d...), append(add[set], a...)
		}
	}
	for port := range oldBy {
		visit(port)
	}
	for port := range nowBy {
		if oldBy[port] == nil {
			visit(port)
		}
	}
	for _, claims := range []map[netip.Addr]int{claimsOld, claimsNow} {
		for a := range claims {
			if (claimsOld[a] > 0) == (claimsNow[a] > 0) {
				continue
			}
			set, e := rules.OwnedElem(a)
			if claimsNow[a] > 0 {
				add[set] = append(add[set], e)
			} else {
				del[set] = append(del[set], e)
			}
		}
	}
	return del, add
}

// sameBinding reports whether o and n bind the same MAC, addresses and
// label to their port.
func sameBinding(o, n *nftspec.Container, labelled map[uint32]bool) bool {
	label := func(c *nftspec.Container) uint32 {
		if labelled[c.Slot] {
			return c.Slot
		}
		return 0
	}
	return slices.Equal(o.MAC, n.MAC) && slices.Equal(o.Addrs, n.Addrs) && label(o) == label(n)
}

// claimsChanged reports whether an address of c became, or stopped being,
// claimed by more than one port.
func claimsChanged(c *nftspec.Container, before, after map[netip.Addr]int) bool {
	return slices.ContainsFunc(c.Addrs, func(a netip.Addr) bool { return (before[a] > 1) != (after[a] > 1) })
}

// elemChanges returns the elements of before that after lacks and those
// of after that before lacks (same key and verdict).
func elemChanges(before, after []nftables.SetElement) (del, add []nftables.SetElement) {
	id := func(e nftables.SetElement) string {
		if e.VerdictData != nil {
			return string(e.Key) + "\x00" + e.VerdictData.Chain
		}
		return string(e.Key)
	}
	in := func(es []nftables.SetElement, e nftables.SetElement) bool {
		return slices.ContainsFunc(es, func(x nftables.SetElement) bool { return id(x) == id(e) })
	}
	for _, e := range before {
		if !in(after, e) {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	for _, e := range after {
		if !in(before, e) {
			add = append(add, e)
		}
	}
	return del, add
}

// SetContainers makes the bridge table bind exactly the containers cs (a
// complete snapshot), in one small transaction of element changes: the
// table is not rewritten, and a packet sees the old or the new bindings.
// Bindings that go are gone before the call returns, and the conntrack
// entries of the addresses that no port holds any more are then deleted
// (hygiene: a packet of another identity on such a flow is dropped anyway;
// see forgetFlows). If the batch fails (the table was changed behind
// egressfw's back) both tables are re-applied.
func (m *Manager) SetContainers(cs []nftspec.Container) error {
	want, err := nftspec.NormalContainers(cs)
	if err != nil {
		return fmt.Errorf("set containers: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.spec == nil || !m.spec.Containers {
		return errors.New("set containers: no ruleset with container identity applied")
	}
	old := m.containers
	table := &nftables.Table{Name: m.spec.Table, Family: nftables.TableFamilyBridge}
	del, add := bridgeDiff(m.spec, old, want)
	for _, name := range rules.BridgeSetNames {
		set := &nftables.Set{Table: table, Name: name, IsMap: name == rules.MapID4 || name == rules.MapID6}
		if err := eachChunk(del[name], func(c []nftables.SetElement) error { return m.b.Queue().SetDeleteElements(set, c) }); err != nil {
			return fmt.Errorf("set containers: %w", err)
		}
		if err := eachChunk(add[name], func(c []nftables.SetElement) error { return m.b.Queue().SetAddElements(set, c) }); err != nil {
			return fmt.Errorf("set containers: %w", err)
		}
	}
	m.containers = want
	if err := m.b.Commit(); err != nil {
		m.texts = nil // changed behind our back: rewrite it all
		if err2 := m.applyLocked(m.spec, m.ids, nil); err2 != nil {
			return fmt.Errorf("set containers: %w (re-apply: %w)", err, err2)
		}
	}
	if !m.keepFlows {
		m.forgetFlows(old, want)
	}
	return nil
}

// Containers returns the containers the bridge table binds.
func (m *Manager) Containers() []nftspec.Container {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.containers)
}

// forgetFlows deletes the conntrack entries of every address that is
// bound in old and to no port in now: flows the address opened (original
// source) and flows NATed to it (reply source, such as published ports).
// An address that moved to another port in the same update is left alone
// (its new holder's first flows would go too); the identity check keeps the
// new holder off the old flows. Each family's table is read once, which
// costs milliseconds whatever the number of addresses (the kernel walks its
// whole conntrack hash). Failures are ignored: this is hygiene.
func (m *Manager) forgetFlows(old, now []nftspec.Container) {
	held := map[netip.Addr]bool{}
	for _, c := range now {
		for _, a := range c.Addrs {
			held[a] = true
		}
	}
	filters := map[netlink.InetFamily][]netlink.CustomConntrackFilter{}
	for _, c := range old {
		for _, a := range c.Addrs {
			if held[a] {
				continue
			}
			held[a] = true // once
			fam := netlink.InetFamily(unix.AF_INET)
			if a.Is6() {
				fam = unix.AF_INET6
			}
			for _, dir := range []netlink.ConntrackFilterType{netlink.ConntrackOrigSrcIP, netlink.ConntrackReplySrcIP} {
				f := &netlink.ConntrackFilter{}
				if f.AddIP(dir, a.AsSlice()) == nil {
					filters[fam] = append(filters[fam], f)
				}
			}
		}
	}
	for fam, fs := range filters {
		_, _ = m.nl.ConntrackDeleteFilters(netlink.ConntrackTable, fam, fs...)
	}
}

// queueBridge queues the changes that turn the bridge table of that name
// into br, or remove it if br is nil. From scratch, the caller has queued
// its deletion; otherwise it is updated in place (rules flushed and
// re-added, sets flushed and refilled, the table and its base chain kept),
// so a packet meets the old or the new bindings, never none.
func (m *Manager) queueBridge(br *rules.Ruleset, table string, scratch bool) error {
	in := &installed{}
	if !scratch {
		var err error
		if in, err = readInstalled(m.conn, nftables.TableFamilyBridge, table); err != nil {
			return err
		}
	}
	if br == nil {
		if in.exists {
			m.b.Queue().DelTable(&nftables.Table{Name: table, Family: nftables.TableFamilyBridge})
		}
		return nil
	}
	return program(br, m.b.Queue(), table, in, nil)
}

// ApplyContainers is ApplyWhen that also makes the bridge table bind
// exactly cs, in the same transaction: egressfw's first Apply after a
// restart, with the containers the Engine API lists, leaves no moment in
// which the bindings of the previous run are gone and the new ones not
// there yet (a labelled container's packets would not match its flows'
// identity meanwhile, and be dropped).
func (m *Manager) ApplyContainers(spec nftspec.Spec, ids nftspec.CgroupIDs, cs []nftspec.Container, ready func() error) error {
	want, err := nftspec.NormalContainers(cs)
	if err != nil {
		return fmt.Errorf("apply ruleset: %w", err)
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("apply ruleset: %w", err)
	}
	if !spec.Containers {
		return errors.New("apply ruleset: containers given without container identity (Containers)")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.containers
	m.containers = want
	if err := m.applyLocked(&spec, ids, ready); err != nil {
		m.containers = old
		return err
	}
	if !m.keepFlows {
		m.forgetFlows(old, want)
	}
	return nil
}

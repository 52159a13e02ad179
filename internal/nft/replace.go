package nft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/google/nftables"
)

// installed is what the kernel holds in our table before an Apply: its
// chains and named sets by name (empty when there is no table).
type installed struct {
	exists bool
	chains map[string]*nftables.Chain
	sets   map[string]*nftables.Set
}

// readInstalled lists the chains and named sets of table <family> <table>.
// Another program may delete the table between the listings (a reload of
// nftables.service during an Apply): the kernel then answers ENOENT (which
// google/nftables does not always wrap), and the table is read again, to
// be found absent.
func readInstalled(c *nftables.Conn, family nftables.TableFamily, table string) (*installed, error) {
	for try := 0; ; try++ {
		in, err := readInstalledOnce(c, family, table)
		if err == nil || try == 2 || !gone(c, family, table) {
			return in, err
		}
	}
}

// gone reports whether table <family> <table> is known not to exist now.
func gone(c *nftables.Conn, family nftables.TableFamily, table string) bool {
	tables, err := c.ListTablesOfFamily(family)
	return err == nil && !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == table })
}

func readInstalledOnce(c *nftables.Conn, family nftables.TableFamily, table string) (*installed, error) {
	in := &installed{chains: map[string]*nftables.Chain{}, sets: map[string]*nftables.Set{}}
	fam := rules.FamilyName(family)
	tables, err := c.ListTablesOfFamily(family)
	if err != nil {
		return nil, fmt.Errorf("list %s tables: %w", fam, err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == table }) {
		return in, nil
	}
	in.exists = true
	chains, err := c.ListChainsOfTableFamily(family)
	if err != nil {
		return nil, fmt.Errorf("list chains of table %s %s: %w", fam, table, err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == table {
			in.chains[ch.Name] = ch
		}
	}
	sets, err := c.GetSets(&nftables.Table{Name: table, Family: family})
	if err != nil {
		return nil, fmt.Errorf("list sets of table %s %s: %w", fam, table, err)
	}
	for _, s := range sets {
		if !s.Anonymous {
			in.sets[s.Name] = s
		}
	}
	return in, nil
}

// sameSet reports whether the installed set have can be kept (flushed and
// refilled) for want. google/nftables (v0.3.0) decodes a verdict map's data
// type into KeyType, losing the key type and length, so for verdict maps
// only the kind is compared; a mismatch there fails the batch, and replace
// then rebuilds the table.
func sameSet(have, want *nftables.Set) bool {
	if have.IsMap != want.IsMap || have.Interval != want.Interval || have.Constant != want.Constant ||
		have.HasTimeout || have.Dynamic {
		return false
	}
	switch {
	case want.IsMap && want.DataType.Name == nftables.TypeVerdict.Name:
		return have.KeyType.Name == nftables.TypeVerdict.Name || have.DataType.Name == nftables.TypeVerdict.Name
	case want.IsMap:
		return have.KeyType.Name == want.KeyType.Name && have.DataType.Name == want.DataType.Name
	}
	return have.KeyType.Name == want.KeyType.Name
}

// sameChain reports whether the installed chain have can be kept for want:
// both regular, or both base chains on the same hook, type, priority and
// policy.
func sameChain(have, want *nftables.Chain) bool {
	if (have.Hooknum == nil) != (want.Hooknum == nil) {
		return false
	}
	if want.Hooknum == nil {
		return true
	}
	return have.Priority != nil && *have.Hooknum == *want.Hooknum && *have.Priority == *want.Priority &&
		have.Type == want.Type && have.Policy != nil && want.Policy != nil && *have.Policy == *want.Policy
}

// program queues, into one batch, the changes that turn the installed table
// into rs, keeping every chain and set that stays (see the package doc,
// Atomicity): the rules of the chains in keep stay as they are (see
// flushRules for when they do not), all other rules are flushed and
// re-added, kept sets are flushed and refilled, and only objects that are
// new, gone or redefined are added or deleted.
func program(rs *rules.Ruleset, c *nftables.Conn, table string, in *installed, keep map[string]bool) error {
	t := &nftables.Table{Name: table, Family: rs.TableFamily()}
	c.AddTable(t) // a no-op if it exists
	keep = flushRules(rs, c, t, in, keep)
	var errs []error
	wantSet, wantChain := map[string]bool{}, map[string]bool{}
	for _, s := range rs.Sets {
		s.Set.Table = t
		wantSet[s.Set.Name] = true
		have, ok := in.sets[s.Set.Name]
		if ok && sameSet(have, s.Set) {
			c.FlushSet(s.Set)
			continue
		}
		if ok { // then flushRules flushed the table: no rule refers to it
			c.DelSet(&nftables.Set{Table: t, Name: have.Name})
		}
		errs = append(errs, c.AddSet(s.Set, nil))
	}
	for _, name := range sortedKeys(in.sets) {
		if !wantSet[name] { // the rules that used it are flushed above, and a kept chain's do not
			c.DelSet(&nftables.Set{Table: t, Name: name})
		}
	}
	for _, ch := range rs.Chains {
		ch.Chain.Table = t
		wantChain[ch.Chain.Name] = true
		have, ok := in.chains[ch.Chain.Name]
		if ok && sameChain(have, ch.Chain) {
			continue
		}
		if ok { // then flushRules flushed the table
			c.DelChain(&nftables.Chain{Table: t, Name: have.Name})
		}
		c.AddChain(ch.Chain)
	}
	for _, s := range rs.Sets { // vmap elements need their chains
		errs = append(errs, eachChunk(s.Elems, func(e []nftables.SetElement) error { return c.SetAddElements(s.Set, e) }))
	}
	for _, name := range sortedKeys(in.chains) {
		if !wantChain[name] { // no rule or (flushed or deleted) map element refers to it
			c.DelChain(&nftables.Chain{Table: t, Name: name})
		}
	}
	for _, ch := range rs.Chains {
		if !keep[ch.Chain.Name] {
			errs = append(errs, addRules(ch, c, t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue table %s %s: %w", rules.FamilyName(t.Family), table, err)
	}
	return nil
}

// addRules queues the chain's rules, each after its anonymous set.
func addRules(ch *rules.ChainDef, c *nftables.Conn, t *nftables.Table) error {
	var errs []error
	for _, r := range ch.Rules {
		if r.Anon != nil {
			r.Anon.Set.Table = t
			errs = append(errs, c.AddSet(r.Anon.Set, r.Anon.Elems))
			r.AnonLookup.SetName, r.AnonLookup.SetID = r.Anon.Set.Name, r.Anon.Set.ID
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch.Chain, Exprs: r.Exprs, UserData: r.UserData()})
	}
	return errors.Join(errs...)
}

// precreate queues the regular chains rs needs and an installed table lacks
// (new tenants), with their rules, records them in in and returns their
// names. They go in a batch of their own before the replacement: nothing
// refers to them yet, so packets cannot reach them, and when the
// replacement makes a map element point to one, a packet still running the
// previous generation's rules finds the chain's rules instead of a chain
// that is empty in that generation (which would let it fall through,
// uncaught). Only done when the objects those rules refer to are already
// installed. The replacement keeps these chains as they are.
func precreate(rs *rules.Ruleset, c *nftables.Conn, table string, in *installed) (map[string]bool, error) {
	made := map[string]bool{}
	if !in.exists || in.chains[rules.ChainDeny] == nil || in.sets[rules.SetIntercept] == nil {
		return made, nil
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	var errs []error
	for _, ch := range rs.Chains {
		if ch.Chain.Hooknum != nil || in.chains[ch.Chain.Name] != nil {
			continue
		}
		ch.Chain.Table = t
		c.AddChain(ch.Chain)
		errs = append(errs, addRules(ch, c, t))
		in.chains[ch.Chain.Name] = ch.Chain
		made[ch.Chain.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return made, fmt.Errorf("queue new chains of table inet %s: %w", table, err)
	}
	return made, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

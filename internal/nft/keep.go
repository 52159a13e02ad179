package nft

import (
	"github.com/egressfw/egressfw/internal/nft/rules"
	"github.com/google/nftables"
)

// Kept chains. The time an Apply takes grows with the number of netlink
// messages it sends, and a tenant's chain is 1 message plus 1 per rule. An
// Apply therefore leaves alone the regular chains that already hold exactly
// the rules it wants:
//
//   - the chains precreate added in this Apply, with their rules;
//   - the chains whose rules this Manager programmed last time, if the
//     table still has a chain of that name, the wanted rules print the
//     same (rules.ChainDef.Render: every rule's text, anonymous set elements
//     included) as the remembered ones, and no other nftables transaction
//     has been committed since this Manager's last one.
//
// The last condition is what makes the memory safe to trust: the kernel's
// ruleset generation (batch.Batcher.Unchanged) moves with every committed
// transaction of any owner, so a rule edited or deleted by hand, a chain
// flushed, a table restored with nft -f, or any other software's change
// makes the next Apply rewrite every chain, restoring what egressfw wants.
// The price is that on a host where other software changes nftables
// between two reloads, the reload is a full rewrite (still one batch). A
// restore after another program's change (watch.go) is the exception: the
// watch has seen every transaction since it started, each naming the
// chains it changed, so the restore rewrites those and keeps the rest.
//
// Base chains are always rewritten: there are few of them, and they hold the
// rules a changed tenant list changes. The rules of every other chain are
// flushed, chain by chain or with the whole table (see flushRules), and
// re-added in the same transaction as before, so a replacement stays atomic
// (see the package doc, Atomicity). The memory is also forgotten after a
// failed Apply, when the table is rebuilt from scratch, when the table name
// changes, and on Cleanup. A kept report-mode chain keeps its counter.

// chainTexts maps each regular chain's name to its printed rules.
type chainTexts map[string]string

// texts returns what the regular chains of rs print as.
func texts(rs *rules.Ruleset) chainTexts {
	out := chainTexts{}
	for _, ch := range rs.Chains {
		if ch.Chain.Hooknum == nil {
			out[ch.Chain.Name] = ch.Render()
		}
	}
	return out
}

// unchanged returns the regular chains of rs that are installed and were
// last programmed (as remembered in last) with the rules rs wants (want,
// from texts(rs)).
func unchanged(rs *rules.Ruleset, in *installed, last, want chainTexts) map[string]bool {
	keep := map[string]bool{}
	if !in.exists {
		return keep
	}
	for _, ch := range rs.Chains {
		name := ch.Chain.Name
		have, ok := in.chains[name]
		if ch.Chain.Hooknum != nil || !ok || !sameChain(have, ch.Chain) {
			continue
		}
		if text, ok := last[name]; ok && text == want[name] {
			keep[name] = true
		}
	}
	return keep
}

// redefines reports whether the installed table has a set or chain that rs
// wants with another definition: it is deleted and re-created, which a
// kept rule that refers to it would make fail.
func redefines(rs *rules.Ruleset, in *installed) bool {
	for _, s := range rs.Sets {
		if have, ok := in.sets[s.Set.Name]; ok && !sameSet(have, s.Set) {
			return true
		}
	}
	for _, ch := range rs.Chains {
		if have, ok := in.chains[ch.Chain.Name]; ok && !sameChain(have, ch.Chain) {
			return true
		}
	}
	return false
}

// flushRules queues the removal of the rules program re-adds and returns
// the chains whose rules stay, a subset of keep. With chains to keep, every
// other installed chain is flushed on its own, those about to be deleted
// too: program deletes the sets that go before the chains that go (a
// verdict map's elements refer to chains), which needs their rules gone.
// When nothing is kept, when rs redefines an installed object, or when
// flushing chain by chain would cost more messages than re-adding the kept
// rules (1000 tenants down to 1, say), the whole table is flushed in one
// message and nothing is kept.
func flushRules(rs *rules.Ruleset, c *nftables.Conn, t *nftables.Table, in *installed, keep map[string]bool) map[string]bool {
	if len(keep) > 0 && !redefines(rs, in) {
		keptRules := 0
		for _, ch := range rs.Chains {
			if keep[ch.Chain.Name] {
				keptRules += len(ch.Rules)
			}
		}
		var flush []string
		for _, name := range sortedKeys(in.chains) {
			if !keep[name] {
				flush = append(flush, name)
			}
		}
		if len(flush) < keptRules {
			for _, name := range flush {
				c.FlushChain(&nftables.Chain{Table: t, Name: name})
			}
			return keep
		}
	}
	c.FlushTable(t)
	return nil
}

// vouch prepares the memory of programmed chains (keep.go) for a restore
// after the changes c: the watch has seen every transaction since it
// joined the notification group, and each names the chains it changed, so
// the chains it did not name still hold what this Manager programmed and
// are kept; the others are rewritten. Lost notifications forget it all.
// Called with m.mu held.
func (m *Manager) vouch(c *changes) {
	if c.overflow || m.texts == nil {
		m.texts = nil
		return
	}
	for name := range c.chains {
		delete(m.texts, name)
	}
	m.vouched = true
}

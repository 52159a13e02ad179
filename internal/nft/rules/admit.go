package rules

import (
	"fmt"
	"slices"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/google/nftables/expr"
)

// Admitted flows of forwarded tenants. A forwarded tenant's chains
// (forward_SLOT, input_SLOT) used to start with `ct state
// established,related accept`: conntrack, not egressfw, decided which
// established flows pass. A flow that conntrack recorded while egressfw's
// table was missing (after `nft flush ruleset`, before the restore; or
// before egressfw first started) was therefore let through for good once
// the table was back: a container kept talking to the internal server it
// reached in the gap (TestGapConnectionsCarryNothing).
//
// The chains now record their decision in the flow: every rule that
// accepts a packet of the tenant's also stores the tenant's slot in the
// slot bits of the ct mark (CtMarkMask, the bits local tenants' intercepted
// flows use), and an established packet passes without the rules only when
// its flow carries that slot. Any other packet is judged by the rules
// again: a flow the rules allow (its own networks, allow_direct) is marked
// and goes on, a flow from the gap to anything else is rejected. Packets
// in the reply direction pass as before: replies of inbound flows such as
// Docker's published ports, and ICMP errors about them.
//
// The slot in a forwarded flow's ct mark does not pull it into the
// listener: the output chain's running rule acts only on locally generated
// packets in the original direction, and forwarded packets never pass the
// output hook (the host's replies to a tenant's flow to one of its own
// addresses are in the reply direction). The tproxy rules need the
// intercept packet mark, which forwarded packets never carry.

// admittedRules are the first rules of a forwarded tenant's chain: replies,
// then the flows the chain admitted before.
func admittedRules(t *nftspec.Tenant, mask uint32) []*RuleDef {
	reply := (&RuleDef{comment: t.Name}).add("ct direction reply", ctDirReply()...).add("accept", accept)
	marked := &RuleDef{}
	marked.add(fmt.Sprintf("ct mark & 0x%08x == 0x%08x", mask, t.Slot), maskedCmp(ctMark(), mask, t.Slot, expr.CmpOpEq)...)
	return []*RuleDef{reply, marked.add("accept", accept)}
}

// admit makes every rule of c that accepts a packet, except those in
// exempt, store the tenant's slot in the ct mark first.
func admit(c *ChainDef, t *nftspec.Tenant, mask uint32, exempt ...*RuleDef) *ChainDef {
	for _, r := range c.Rules {
		n, w := len(r.Exprs), len(r.words)
		if n == 0 || w == 0 || r.words[w-1] != "accept" || slices.Contains(exempt, r) {
			continue
		}
		if v, ok := r.Exprs[n-1].(*expr.Verdict); !ok || v.Kind != expr.VerdictAccept {
			continue
		}
		r.Exprs = append(append(r.Exprs[:n-1:n-1], setBits(true, mask, t.Slot)...), r.Exprs[n-1])
		r.words = append(r.words[:w-1:w-1], markSetText("ct", mask, t.Slot), "accept")
	}
	return c
}

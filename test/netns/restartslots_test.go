package netns

import (
	"maps"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestSlotsSurviveRestart: a restart with a reordered, edited tenant list
// keeps every remaining tenant's slot, and so its listener port, as a
// reload does: the slots are read back from the table the stopped egressfw
// left. The removed tenant's slot goes to no new tenant (it drains), so an
// unanswered SYN of the removed tenant, retransmitted with its old ct mark,
// cannot reach another tenant's listener. Each tenant is served on its
// kept slot.
func TestSlotsSurviveRestart(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	d := tp.startEgressfw(tp.config(cfgOpts{tenants: tp.tenant("a", "a", 0, "") + tp.tenant("b", "", tp.uid, "") + tp.tenant("c", "b", 0, "")}))
	before := tenantSlots(t, tp)
	if want := map[string]int{"a": 1, "b": 2, "c": 3}; !maps.Equal(before, want) {
		t.Fatalf("first start: slots %v, want %v", before, want)
	}
	d.stop()
	// a leaves, d (in a's cgroup) arrives, the others are listed in another order.
	tp.writeConfig("egressfw.toml", tp.config(cfgOpts{tenants: tp.tenant("c", "b", 0, "") + tp.tenant("b", "", tp.uid, "") + tp.tenant("d", "a", 0, "")}))
	i := d.since()
	d.start()
	after := tenantSlots(t, tp)
	t.Logf("slots %v, after a restart with tenants c, b, d: %v", before, after)
	if after["b"] != before["b"] || after["c"] != before["c"] {
		t.Errorf("after the restart: slots %v, want b and c on their slots of before, %v", after, before)
	}
	if after["d"] == before["a"] {
		t.Errorf("after the restart: new tenant d got slot %d, the removed tenant a's, at once", after["d"])
	}
	for _, c := range []struct {
		tenant string
		who    who
	}{{"c", tp.inCgroup("b")}, {"b", tp.asUID()}, {"d", tp.inCgroup("a")}} {
		check(t, "tenant "+c.tenant, tp.curl(c.who, "http://"+ipPublic+"/"), okPublic)
		if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "connection" && l.str("tenant") == c.tenant }, 3*time.Second); !ok {
			t.Errorf("no connection line of tenant %s (the port it arrived on names the tenant)", c.tenant)
		}
	}
}

// tenantChainRe finds each tenant chain of `nft list table` with the name
// its intercept rule carries.
var tenantChainRe = regexp.MustCompile(`(?s)chain tenant_(\d+) \{[^}]*?comment "([^"]+)"`)

// tenantSlots reads each tenant's slot from egressfw's table.
func tenantSlots(t *testing.T, tp *topo) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range tenantChainRe.FindAllStringSubmatch(tp.nft("list", "table", "inet", "egressfw"), -1) {
		slot, _ := strconv.Atoi(m[1])
		out[m[2]] = slot
	}
	return out
}

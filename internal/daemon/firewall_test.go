package daemon

import (
	"strings"
	"testing"
)

// TestRulesDNSRedirect: dns = "egressfw" sends the tenant's port 53 to its
// DNS listener (the dns_redirect map names its slot, the nat output chain
// redirects by it); dns = "direct" gets no redirect and no port 53 of its
// own (its resolvers are allow_direct's). Broken, a tenant's DNS would
// reach its resolver unjudged, or nowhere.
func TestRulesDNSRedirect(t *testing.T) {
	cfg := uidConfig(t, "", tenantTOML("a", "uids = [1000]\ndns = \"egressfw\"")+
		tenantTOML("b", "uids = [1001]\ndns = \"direct\""))
	out, err := Rules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	chain := func(name string) string {
		_, rest, ok := strings.Cut(out, "chain "+name+" {")
		if !ok {
			t.Fatalf("no chain %s in:\n%s", name, out)
		}
		body, _, _ := strings.Cut(rest, "\n\t}") // the block's end, not a set's

		return body
	}
	_, redirect, _ := strings.Cut(out, "map dns_redirect {")
	redirect, _, _ = strings.Cut(redirect, "\n\t}")
	if !strings.Contains(redirect, "elements = { 0x00000001 : 20001 }") {
		t.Errorf("dns_redirect:%s\nwant tenant a's slot 1 to its DNS port 20001 only", redirect)
	}
	if nat := chain("nat_output"); !strings.Contains(nat, "udp dport 53 redirect to :ct mark & 0x00000fff map @dns_redirect") ||
		!strings.Contains(nat, "tcp dport 53 redirect to :ct mark & 0x00000fff map @dns_redirect") {
		t.Errorf("nat_output does not redirect port 53 by the map:%s", nat)
	}
	if a := chain("tenant_1"); !strings.Contains(a, "udp dport 53 ") || !strings.Contains(a, "tcp dport 53 ") {
		t.Errorf("tenant_1 (a, dns = egressfw) does not let its port 53 through to the redirect:%s", a)
	}
	if b := chain("tenant_2"); strings.Contains(b, "dport 53") {
		t.Errorf("tenant_2 (b, dns = direct) has a port 53 rule of its own:%s", b)
	}
}

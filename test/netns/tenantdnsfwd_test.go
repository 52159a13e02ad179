package netns

import (
	"testing"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// TestTenantDNSForwarded: a VM behind virbr0 and a pod behind cni0 (routed,
// br_netfilter on, as Docker leaves it) get egressfw's answers from
// whatever address they ask, the bridge gateway and the split-horizon
// resolver their allow_direct names included, over UDP and TCP; curl in
// the VM resolves through it. A tenant with dns = "direct" keeps today's
// behaviour: its allow_direct resolver answers it, and nothing else does.
func TestTenantDNSForwarded(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	vm := tp.guest("vm", vmBridge, ipVirbr, ipVM)
	pod := tp.guest("pod", "cni0", ipCNI, ipPod)
	netnstest.Output(t, nsCmd(tp.host, "sysctl", "-qw", "net.ipv4.ip_forward=1",
		"net.bridge.bridge-nf-call-iptables=1"))
	tenants := tp.tenant("a", "a", 0, "") + tp.tenant("b", "", tp.uid, `dns = "direct"`) + forwardedTenants()
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tenants}))

	for _, c := range []struct {
		w       who
		servers []string
	}{
		{vm, []string{ipForeignDNS, ipVirbr, ipDNS}},
		{pod, []string{ipForeignDNS, ipCNI}},
	} {
		for _, server := range c.servers {
			for _, tcp := range []bool{false, true} {
				if r := tp.dig(c.w, server, "www.example.com", "A", tcp); r.status != "NOERROR" || !r.has(ipPublic) {
					t.Errorf("%s @%s tcp %v: www A: %v\n%s", c.w.label, server, tcp, r, r.out)
				}
				if r := tp.dig(c.w, server, "bi-tool.example.com", "A", tcp); r.status != "NXDOMAIN" || len(r.answers) != 0 {
					t.Errorf("%s @%s tcp %v: bi-tool A: %v, want NXDOMAIN", c.w.label, server, tcp, r)
				}
			}
		}
	}
	if _, ok := d.dnsLog(0, "bi-tool.example.com", map[string]string{"tenant": "vms", "decision": "deny",
		"reason": "internal_address", "orig_dst": ipForeignDNS + ":53"}); !ok {
		t.Errorf("no dns line for the VM's refused query naming the address it asked")
	}
	t.Run("curl in the VM", func(t *testing.T) {
		w := tp.resolving(vm, ipForeignDNS)
		check(t, "www", tp.curl(w, "http://www.example.com/"), okPublic)
		check(t, "bi-tool", tp.curl(w, "http://bi-tool.example.com/"), want{exit: 6, stderr: "could not resolve host"})
	})
	t.Run(`dns = "direct"`, func(t *testing.T) {
		if r := tp.dig(tp.asUID(), ipDNS, "bi-tool.example.com", "A", false); r.status != "NOERROR" || !r.has(ipBITool) {
			t.Errorf("its allow_direct resolver: %v, want the resolver's own answer", r)
		}
		if r := tp.dig(tp.asUID(), ipForeignDNS, "www.example.com", "A", false); r.status != "" || !r.unanswered() {
			t.Errorf("another resolver: %v, want no answer (rejected)", r)
		}
	})
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

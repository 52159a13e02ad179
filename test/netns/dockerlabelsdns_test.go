package netns

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// directDNSTenant is a labelled tenant whose port 53 is allow_direct's
// (dns = "direct"): the split-horizon resolver only.
const directDNSTenant = `
[[tenant]]
name = "selfdns"
docker_labels = { "egressfw.tenant" = "selfdns" }
dns = "direct"
  [[tenant.allow_direct]]
  cidr = "` + ipDNS + `/32"
  ports = [53]
`

// nameserver is the first nameserver of container name's /etc/resolv.conf.
func (w *labelWorld) nameserver(name string) string {
	w.tp.t.Helper()
	for _, l := range strings.Split(w.dk.Docker("exec", name, "busybox", "cat", "/etc/resolv.conf"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
			return f[1]
		}
	}
	w.tp.t.Fatalf("%s: no nameserver in its /etc/resolv.conf", name)
	return ""
}

// TestDockerLabelsDNS: tenants' DNS for Docker-label tenants, with a real
// dockerd. On the default bridge (the host's nameserver in the
// containers' resolv.conf) and on a user network (Docker's embedded DNS at
// 127.0.0.11, which forwards from the container's namespace), both
// covered by the interface tenant "containers", a labelled container
// ("trusted", allow_internal svc.example.com) and an unlabelled one ask
// the resolver their /etc/resolv.conf names and a foreign address, over
// UDP and TCP, and with busybox's nslookup inside the container: the
// labelled one gets svc's internal address, the unlabelled one NXDOMAIN;
// both get the public name. A refusal's log line names the tenant and the
// container. A labelled tenant with dns = "direct" keeps port 53
// allow_direct's: its resolver answers it, no other address does, and
// egressfw answers nothing. An unlabelled container that takes the
// labelled one's address, with the host's neighbour entry pointed at it,
// gets no answer at all.
func TestDockerLabelsDNS(t *testing.T) {
	t.Parallel()
	w := newLabelWorld(t, func(w *labelWorld) {
		w.more = directDNSTenant
		w.dk.Docker("network", "create", "--subnet", "172.30.0.0/24", "dnsnet")
		// Before egressfw starts, so each has its tenant from its first query.
		w.run("relay", trustedLabel)
		w.run("plain", "")
		w.run("relay2", trustedLabel, "--network", "dnsnet")
		w.run("plain2", "", "--network", "dnsnet")
		w.run("selfdns", "egressfw.tenant=selfdns")
		w.run("spoofer", "", "--cap-add", "NET_ADMIN")
	})
	tp, d := w.tp, w.d

	for _, c := range []struct {
		name     string
		tenant   string
		labelled bool
	}{{"relay", "trusted", true}, {"plain", "containers", false}, {"relay2", "trusted", true}, {"plain2", "containers", false}} {
		t.Run(c.name, func(t *testing.T) {
			cl, ns := w.client(c.name), w.nameserver(c.name)
			t.Logf("%s asks %s (its resolv.conf)", c.name, ns)
			for _, server := range []string{ns, ipForeignDNS} {
				for _, tcp := range []bool{false, true} {
					label := fmt.Sprintf("@%s tcp %v", server, tcp)
					r := tp.dig(cl, server, "svc.example.com", "A", tcp)
					if c.labelled && (r.status != "NOERROR" || !r.has("IN A "+ipSvc)) {
						t.Errorf("%s: svc A: %v, want its tenant's allow_internal address %s\n%s", label, r, ipSvc, r.out)
					}
					if !c.labelled && (r.status != "NXDOMAIN" || len(r.answers) != 0) {
						t.Errorf("%s: svc A: %v, want NXDOMAIN\n%s", label, r, r.out)
					}
					if r := tp.dig(cl, server, "www.example.com", "A", tcp); r.status != "NOERROR" || !r.has("IN A "+ipPublic) {
						t.Errorf("%s: www A: %v\n%s", label, r, r.out)
					}
				}
			}
			out := w.dk.Try("exec", c.name, "busybox", "nslookup", "-type=a", "svc.example.com")
			if got := strings.Contains(out, "Address: "+ipSvc); got != c.labelled || !c.labelled && !strings.Contains(out, "NXDOMAIN") {
				t.Errorf("nslookup svc.example.com in the container (labelled %v):\n%s", c.labelled, out)
			}
			// The labelled tenant refuses the BI tool: its line names it too.
			i := d.since()
			if r := tp.dig(cl, ns, "bi-tool.example.com", "A", false); r.status != "NXDOMAIN" {
				t.Errorf("bi-tool A: %v, want NXDOMAIN", r)
			}
			w.dnsLogged(t, i, c.name, "bi-tool.example.com", c.tenant)
		})
	}
	t.Run("the unlabelled one's refusal logged", func(t *testing.T) {
		w.dnsLogged(t, 0, "plain", "svc.example.com", "containers")
		w.dnsLogged(t, 0, "plain2", "svc.example.com", "containers")
		for _, c := range []string{"relay", "relay2"} {
			src := w.ip(c) + ":"
			if ls := d.linesFrom(0, func(l logLine) bool {
				return l.str("msg") == "dns" && l.str("name") == "svc.example.com" && strings.HasPrefix(l.str("src"), src)
			}); len(ls) != 0 {
				t.Errorf("%s's allowed svc queries logged as refused: %v", c, ls)
			}
		}
	})

	t.Run(`dns = "direct"`, func(t *testing.T) {
		cl, i := w.client("selfdns"), d.since()
		for _, tcp := range []bool{false, true} {
			if r := tp.dig(cl, ipDNS, "bi-tool.example.com", "A", tcp); r.status != "NOERROR" || !r.has(ipBITool) {
				t.Errorf("its allow_direct resolver, tcp %v: bi-tool A: %v, want the resolver's own answer\n%s", tcp, r, r.out)
			}
			if r := tp.dig(cl, ipForeignDNS, "www.example.com", "A", tcp); r.status != "" || !r.unanswered() {
				t.Errorf("another resolver, tcp %v: %v, want no answer (rejected)\n%s", tcp, r, r.out)
			}
		}
		src := w.ip("selfdns") + ":"
		if ls := d.linesFrom(i, func(l logLine) bool { return l.str("msg") == "dns" && strings.HasPrefix(l.str("src"), src) }); len(ls) != 0 {
			t.Errorf("egressfw answered the dns = \"direct\" container: %v", ls)
		}
	})

	t.Run("spoofed address and neighbour entry", func(t *testing.T) {
		spoofer := w.client("spoofer")
		if r := tp.dig(spoofer, ipForeignDNS, "svc.example.com", "A", false); r.status != "NXDOMAIN" {
			t.Errorf("spoofer, own address: svc A: %v, want NXDOMAIN", r)
		}
		victim, i := w.impersonate(spoofer, "relay"), d.since()
		for _, server := range []string{w.nameserver("relay"), ipForeignDNS} {
			// Sent from the victim's address (-b) and dropped: dig times out.
			if r := tp.dig(spoofer, server, "svc.example.com", "A", false, "-b", victim); r.status != "" || !r.timedOut() {
				t.Errorf("spoofer as relay @%s: svc A: %v, want no answer (timed out)\n%s", server, r, r.out)
			}
		}
		if ls := d.linesFrom(i, func(l logLine) bool { return strings.HasPrefix(l.str("src"), victim+":") }); len(ls) != 0 {
			t.Errorf("egressfw saw queries from the spoofed address: %v", ls)
		}
		w.unimpersonate(victim)
		if r := tp.dig(w.client("relay"), ipForeignDNS, "svc.example.com", "A", false); r.status != "NOERROR" || !r.has(ipSvc) {
			t.Errorf("relay, after the spoof: svc A: %v", r)
		}
	})
}

// dnsLogged checks that egressfw logged container name's refused query
// for qname (from log index i) under tenant, naming the container.
func (w *labelWorld) dnsLogged(t *testing.T, i int, name, qname, tenant string) {
	t.Helper()
	src := w.ip(name) + ":"
	l, ok := w.d.waitLogFrom(i, func(l logLine) bool {
		return l.str("msg") == "dns" && l.str("name") == qname && strings.HasPrefix(l.str("src"), src)
	}, 3*time.Second)
	switch {
	case !ok:
		t.Errorf("no dns line for %s's refused %s", name, qname)
	case l.str("tenant") != tenant || l.str("decision") != "deny" || l.str("rcode") != "NXDOMAIN":
		t.Errorf("%s's refused %s logged as %v; want tenant %q, deny, NXDOMAIN", name, qname, l, tenant)
	case l.str("container") != name || l.str("container_id") != w.inspect(name, "{{.Id}}")[:12]:
		t.Errorf("%s's refused %s logged with container %q, container_id %q; want its name and short id",
			name, qname, l.str("container"), l.str("container_id"))
	}
}

package proxy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const labelledTenant = `
[[tenant]]
name = "trusted"
docker_labels = { "egressfw.tenant" = "trusted" }

[docker]
socket = "/run/docker.sock"
`

// TestContainerInLogLine: a Docker-label tenant's connections are
// REDIRECTed like any forwarded tenant's, and the log line names the
// container bound to the source address (name and short id); a source no
// container is bound to gets no container fields.
func TestContainerInLogLine(t *testing.T) {
	h := newHarness(t, labelledTenant)
	lo4, lo6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	h.srv.SetHostAddrs([]netip.Prefix{netip.PrefixFrom(lo4, 32), netip.PrefixFrom(lo6, 128)},
		map[netip.Addr]string{lo4: "docker0", lo6: "docker0"})
	// The first connection's source is bound to no container; the second
	// comes from the same address once a container is bound to it.
	h.httpGet("trusted", "198.51.100.10:80", "www.example.com")
	m := h.waitLog(map[string]any{"tenant": "trusted", "orig_dst": "198.51.100.10:80", "iif": "docker0"})
	for _, k := range []string{"container", "container_id"} {
		if _, ok := m[k]; ok {
			t.Errorf("a source bound to no container is logged with %s: %v", k, m)
		}
	}
	src := netip.MustParseAddrPort(m["src"].(string)).Addr()
	h.srv.SetContainers(map[netip.Addr]Container{src: {Name: "relay", ID: "0123456789ab"}})
	h.httpGet("trusted", "198.51.100.11:80", "www.example.com")
	h.waitLog(map[string]any{"tenant": "trusted", "iif": "docker0", "orig_dst": "198.51.100.11:80",
		"container": "relay", "container_id": "0123456789ab"})
}

// TestContainerInDNSLine: the dns line of a forwarded tenant's refused
// query names the container bound to its source address, as the
// connection line does; a source no container is bound to gets no
// container fields.
func TestContainerInDNSLine(t *testing.T) {
	h := newHarness(t, labelledTenant)
	var port uint16
	for _, ts := range h.srv.state.Load().tenants {
		if ts.name == "trusted" {
			port = ts.slot.DNSPort
		}
	}
	ap := fmt.Sprintf("0.0.0.0:%d", port)
	if r := h.ask(ap, "udp", "bi-tool.example.com", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("bi-tool A: %v", r)
	}
	m := h.waitDNSLine(map[string]any{"tenant": "trusted", "name": "bi-tool.example.com"})
	for _, k := range []string{"container", "container_id"} {
		if _, ok := m[k]; ok {
			t.Errorf("a source bound to no container is logged with %s: %v", k, m)
		}
	}
	src := netip.MustParseAddrPort(m["src"].(string)).Addr()
	h.srv.SetContainers(map[netip.Addr]Container{src: {Name: "relay", ID: "0123456789ab"}})
	h.ask(ap, "tcp", "metadata.example.com", dns.TypeA)
	h.waitDNSLine(map[string]any{"tenant": "trusted", "name": "metadata.example.com",
		"container": "relay", "container_id": "0123456789ab"})
}

// waitDNSLine waits up to 3s for a dns line whose fields contain want.
func (h *harness) waitDNSLine(want map[string]any) map[string]any {
	h.t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, m := range h.dnsLines() {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(want)), func(k string) bool { return fmt.Sprint(m[k]) != fmt.Sprint(want[k]) }) {
				return m
			}
		}
	}
	h.t.Fatalf("no dns line with %v in:\n%s", want, h.logs.Bytes())
	return nil
}

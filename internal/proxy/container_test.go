package proxy

import (
	"net/netip"
	"testing"
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

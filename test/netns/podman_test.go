package netns

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/dockertest"
)

// podsTenant is the interface tenant of Podman's bridges (netavark names
// them podman0, podman1, ...).
func podsTenant() string {
	return fmt.Sprintf(`[[tenant]]
name = "pods"
interfaces = ["podman*"]
source_cidrs = ["10.88.0.0/16"]
  [[tenant.allow_direct]]
  cidr = "%s/32"
  ports = [53]
`, ipDNS)
}

// TestPodmanLabels: Docker-label tenants with rootful Podman's
// Docker-compatible API (podman 4.3, netavark bridge) instead of dockerd:
// a labelled container reaches its tenant's internal service and an
// unlabelled one on the same bridge gets the interface tenant, each named
// in the log; a labelled container started after egressfw gets its tenant
// within a second.
func TestPodmanLabels(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	pd := dockertest.StartPodman(t, tp.host, tp.id)
	pd.BuildImage()
	client := func(name string) who {
		return who{label: name, netns: "/proc/" + pd.Podman("inspect", "-f", "{{.State.Pid}}", name) + "/ns/net"}
	}
	pd.Run("relay", "--label", trustedLabel)
	pd.Run("plain")
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: labelTenants(pd.Sock, podsTenant())}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("egressfw log:\n%s", d.logText())
		}
	})
	logged := func(i int, name, tenant string) {
		t.Helper()
		src := pd.Podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
		l, ok := d.waitLogFrom(i, func(l logLine) bool {
			return l.str("msg") == "connection" && strings.HasPrefix(l.str("src"), src+":")
		}, 3*time.Second)
		id := pd.Podman("inspect", "-f", "{{.Id}}", name)[:12]
		if !ok || l.str("tenant") != tenant || l.str("container") != name || l.str("container_id") != id || l.str("iif") != "podman0" {
			t.Errorf("%s's request logged as %v; want tenant %q, container %q (%s) on podman0", name, l, tenant, name, id)
		}
	}
	i := d.since()
	check(t, "relay: svc", tp.curl(client("relay"), svcByName...), okSvc)
	logged(i, "relay", "trusted")
	i = d.since()
	check(t, "plain: svc", tp.curl(client("plain"), svcByName...), deniedInt)
	logged(i, "plain", "pods")
	check(t, "plain: public", tp.curl(client("plain"), publicHTTP...), okPublic)

	pd.Run("late", "--label", trustedLabel)
	start := time.Now()
	late := client("late")
	for r := tp.curl(late, svcByName...); r.status != 200; r = tp.curl(late, svcByName...) {
		if r.status != 403 || time.Since(start) > 5*time.Second {
			t.Fatalf("late: svc answers %v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("late got its tenant %v after podman run returned", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > svcFollowed {
		t.Errorf("late got its tenant %v after podman run returned, want within %v", took, svcFollowed)
	}
}

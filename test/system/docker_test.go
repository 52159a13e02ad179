//go:build system

package system

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// dockerSetup makes a container by hand (no dockerd in the test rootfs): a
// network namespace "ctr" on bridge br0 with a process in it, its sandbox
// path in a root-only directory as dockerd's /run/docker is, and the
// docker group.
const dockerSetup = `
groupadd --system docker
ip link add br0 type bridge
ip addr add 172.31.0.1/24 dev br0
ip link set br0 up
ip netns add ctr
ip link add vc0 type veth peer name eth0 address 02:42:ac:1f:00:02 netns ctr
ip link set vc0 master br0 up
ip -n ctr addr add 172.31.0.2/24 dev eth0
ip -n ctr link set eth0 up
ip -n ctr link set lo up
ip -n ctr route add default via 172.31.0.1
systemd-run --quiet --unit=systest-ctr -p NetworkNamespacePath=/run/netns/ctr sleep 3600
install -d -m 0700 /run/fakedocker /run/fakedocker/netns
touch /run/fakedocker/netns/ctr
mount --bind /run/netns/ctr /run/fakedocker/netns/ctr
`

// dockerTenants turns Docker-label tenants on in the shipped config: the
// interface tenant of br0, which may not reach the internal server, and
// "trusted", whose labelled containers may.
const dockerTenants = `
f=/etc/egressfw/egressfw.toml
sed -i -e 's|^socket = ""|socket = "/run/docker.sock"|' $f
cat >>$f <<'EOF'

[[tenant]]
name = "containers"
interfaces = ["br0"]
source_cidrs = ["172.31.0.0/24"]

[[tenant]]
name = "trusted"
docker_labels = { "egressfw.tenant" = "trusted" }
  [[tenant.allow_internal]]
  host = "internal.systest"
  ports = [80]
EOF
egressfw check-config
`

// TestDockerSocketUnderSystemd: the hardened service reads the Engine API
// once the docker group is added with a drop-in, as the README says, and
// with nothing else: the container's sandbox path is not readable by the
// service, its network namespace is found by its process; the labelled
// container is bound to its bridge port and reaches its tenant's internal
// service. Without the drop-in the socket is refused (logged, STATUS=
// says so), the service runs on and the container has its interface
// tenant only. The service's capabilities stay CAP_NET_ADMIN alone, and
// systemd-analyze's exposure score is logged.
func TestDockerSocketUnderSystemd(t *testing.T) {
	c := installedContainer(t)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run(20*time.Second, "journalctl", "--no-pager", "-n", "60", "-u", "egressfw")
			t.Logf("egressfw journal:\n%s", out)
		}
	})
	c.sh(t, reconfigure)
	c.sh(t, dockerSetup)
	pid := strings.TrimSpace(c.sh(t, "systemctl show -p MainPID --value systest-ctr"))
	spec, _ := json.Marshal([]map[string]any{{"ID": strings.Repeat("ab", 32), "Name": "relay", "Labels": map[string]string{"egressfw.tenant": "trusted"},
		"Sandbox": "/run/fakedocker/netns/ctr", "Pid": atoi(t, pid), "IP": "172.31.0.2", "MAC": "02:42:ac:1f:00:02"}})
	if out, err := c.run(30*time.Second, "systemd-run", "--quiet", "--unit=systest-engine", "/usr/local/bin/systest-httpd",
		"-engine", "/run/docker.sock", "-engine-group", "docker", "-containers", string(spec)); err != nil {
		t.Fatalf("start the engine: %v\n%s", err, out)
	}
	c.sh(t, "for i in $(seq 50); do [ -S /run/docker.sock ] && exit 0; sleep 0.1; done; exit 1")
	c.sh(t, dockerTenants)
	fromCtr := func(allowed bool) {
		t.Helper()
		out, err := c.run(30*time.Second, "ip", "netns", "exec", "ctr", "curl", "-sS", "-m", "5",
			"--resolve", "internal.systest:80:10.1.2.3", "http://internal.systest/")
		check(t, "container", "http://internal.systest/", out, err, allowed)
	}

	t.Run("without the docker group", func(t *testing.T) {
		c.sh(t, "systemctl restart egressfw")
		expectState(t, c, "active")
		c.sh(t, `for i in $(seq 100); do journalctl -u egressfw -o cat | grep 'cannot read the engine API' | grep -q 'permission denied' && exit 0; sleep 0.1; done; exit 1`)
		if st := c.sh(t, "systemctl show -p StatusText --value egressfw"); !strings.Contains(st, "Docker API unreachable") {
			t.Errorf("STATUS= %q does not say the API is unreachable", st)
		}
		fromCtr(false)
	})

	t.Run("with the docker group", func(t *testing.T) {
		c.sh(t, `mkdir -p /etc/systemd/system/egressfw.service.d
printf '[Service]\nSupplementaryGroups=docker\n' >/etc/systemd/system/egressfw.service.d/docker.conf
systemctl daemon-reload
systemctl restart egressfw`)
		expectState(t, c, "active")
		c.sh(t, `for i in $(seq 100); do journalctl -u egressfw -o cat --since=-1min | grep -q 'following the engine API' && exit 0; sleep 0.1; done; exit 1`)
		c.sh(t, `for i in $(seq 50); do nft list set bridge egressfw port_ip | grep -q 172.31.0.2 && exit 0; sleep 0.1; done; exit 1`)
		fromCtr(true)
		c.sh(t, `journalctl -u egressfw -o cat | grep '"msg":"connection"' | grep '"container":"relay"' | grep -q '"tenant":"trusted"'`)
		status := c.sh(t, `grep -E '^(Uid|Groups|CapEff|CapBnd|CapAmb):' /proc/$(systemctl show -p MainPID --value egressfw)/status`)
		gid := strings.TrimSpace(c.sh(t, "getent group docker | cut -d: -f3"))
		for _, want := range []string{"CapEff:\t0000000000001000", "CapBnd:\t0000000000001000", "CapAmb:\t0000000000001000", gid} {
			if !strings.Contains(status, want) {
				t.Errorf("egressfw's credentials lack %q:\n%s", want, status)
			}
		}
		out, _ := c.run(60*time.Second, "systemd-analyze", "security", "--no-pager", "egressfw.service")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		t.Logf("systemd-analyze security with the drop-in: %s", lines[len(lines)-1])
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

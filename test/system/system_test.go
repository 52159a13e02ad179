//go:build system

// Package system tests the Debian package under a real systemd: it builds
// the .deb, boots a Debian 12 container with systemd-nspawn (own network
// namespace; the host's is never touched), installs the package with apt
// and checks the service, reload, tenants, stop and purge from inside.
//
// Run it with `make test-system` (root).
package system

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The container's network: the servers live in their own namespace "srv"
// behind a veth, so their addresses are not the container's own (egressfw
// treats the host's own addresses as internal).
const netSetup = `
ip netns add srv
ip link add veth0 type veth peer name veth1 netns srv
ip addr add 192.0.2.1/24 dev veth0
ip addr add 10.1.2.1/24 dev veth0
ip link set veth0 up
ip -n srv addr add 192.0.2.10/24 dev veth1
ip -n srv addr add 192.0.2.53/24 dev veth1
ip -n srv addr add 10.1.2.3/24 dev veth1
ip -n srv link set veth1 up
ip -n srv link set lo up
systemd-run --quiet --unit=systest-upstream -p NetworkNamespacePath=/run/netns/srv \
	/usr/local/bin/systest-httpd -http 192.0.2.10:80,10.1.2.3:80 -dns 192.0.2.53:53 \
	-names public.systest=192.0.2.10,internal.systest=10.1.2.3
for i in $(seq 50); do curl -s -m 1 http://10.1.2.3/ >/dev/null && exit 0; sleep 0.1; done
echo "upstream did not come up"; exit 1
`

// reconfigure makes the doc range public, points egressfw's resolver at the
// test DNS server and adds a uid tenant: visible in behaviour and in nft.
const reconfigure = `
f=/etc/egressfw/egressfw.toml
sed -i -e 's|^public_cidrs = \[\]|public_cidrs = ["192.0.2.0/24"]|' \
	-e 's|^servers = \[\]|servers = ["192.0.2.53:53"]|' $f
cat >>$f <<'EOF'

[[tenant]]
name = "batch"
uids = [4242]
EOF
grep -q '192.0.2.0/24' $f && grep -q '192.0.2.53:53' $f
`

func TestPackageUnderSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: debootstrap, systemd-nspawn, cgroups")
	}
	start := time.Now()
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	deb := buildDeb(t, top)
	lintian(t, deb)
	helper := filepath.Join(t.TempDir(), "systest-httpd")
	if out, err := exec.Command(goBinary(), "build", "-tags", "system", "-o", helper, "./httpd").CombinedOutput(); err != nil {
		t.Fatalf("building the test upstream: %v\n%s", err, out)
	}
	tarball := cachedRootfs(t)
	t.Logf("package and rootfs ready after %v", time.Since(start).Round(time.Second))

	c := bootContainer(t, tarball)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run(20*time.Second, "journalctl", "--no-pager", "-n", "80", "-u", "egressfw")
			t.Logf("egressfw journal:\n%s", out)
		}
	})
	t.Logf("container booted after %v", time.Since(start).Round(time.Second))
	c.copyIn(helper, "usr/local/bin/systest-httpd", 0o755)
	c.copyIn(deb, "root/"+filepath.Base(deb), 0o644)
	c.sh(t, netSetup)

	t.Run("install", func(t *testing.T) {
		c.sh(t, "cd /root && apt-get install -y ./"+filepath.Base(deb))
		expectState(t, c, "active")
		show := c.sh(t, "systemctl show egressfw -p Type -p StatusText -p WatchdogUSec -p NRestarts -p LimitNOFILE")
		for _, want := range []string{"Type=notify", "WatchdogUSec=30s", "NRestarts=0", "LimitNOFILE=65536"} {
			if !strings.Contains(show, want) {
				t.Errorf("systemctl show egressfw lacks %s:\n%s", want, show)
			}
		}
		if !strings.Contains(show, "StatusText=") || strings.Contains(show, "StatusText=\n") {
			t.Errorf("no STATUS= text after start:\n%s", show)
		}
		// Not root, only CAP_NET_ADMIN (bit 12) in every set.
		status := c.sh(t, `grep -E '^(Uid|CapEff|CapPrm|CapBnd|CapAmb):' /proc/$(systemctl show -p MainPID --value egressfw)/status`)
		for _, want := range []string{"CapEff:\t0000000000001000", "CapPrm:\t0000000000001000", "CapBnd:\t0000000000001000", "CapAmb:\t0000000000001000"} {
			if !strings.Contains(status, want) {
				t.Errorf("egressfw's credentials lack %q:\n%s", want, status)
			}
		}
		if strings.Contains(status, "Uid:\t0\t") {
			t.Errorf("egressfw runs as root:\n%s", status)
		}
		if out := c.sh(t, "curl -sS -m 5 http://127.0.0.1:9464/metrics"); !strings.Contains(out, "egressfw_") {
			t.Errorf("metrics endpoint has no egressfw_ series:\n%.500s", out)
		}
		if out := c.sh(t, "head -c 1 /usr/share/egressfw/grafana/egressfw.json"); out != "{" {
			t.Errorf("the Grafana dashboard is not installed: %q", out)
		}
		expectConfigPrivate(t, c)
	})

	t.Run("tenant slice", func(t *testing.T) {
		c.sh(t, "systemd-run --quiet --unit=systest-tenant --slice=egressfw-webhooks.slice sleep 600")
		got := strings.TrimSpace(c.sh(t, "grep '^0::' /proc/$(systemctl show -p MainPID --value systest-tenant)/cgroup"))
		if want := "0::/egressfw.slice/egressfw-webhooks.slice/systest-tenant.service"; got != want {
			t.Errorf("tenant cgroup = %q, want %q (the default config's tenant path)", got, want)
		}
		// The shipped config treats the documentation range as internal.
		expectTenant(t, c, "http://192.0.2.10/", "", false)
		expectHost(t, c, "http://10.1.2.3/", true)
	})

	t.Run("reload", func(t *testing.T) {
		pid := c.sh(t, "systemctl show -p MainPID --value egressfw")
		before := c.sh(t, "nft list table inet egressfw")
		c.sh(t, reconfigure)
		c.sh(t, "systemctl reload egressfw")
		c.sh(t, `for i in $(seq 100); do journalctl -u egressfw -o cat | grep -q 'config reloaded' && exit 0; sleep 0.1; done; exit 1`)
		expectState(t, c, "active")
		if got := c.sh(t, "systemctl show -p MainPID --value egressfw"); got != pid {
			t.Errorf("MainPID changed across reload: %s -> %s", pid, got)
		}
		if after := c.sh(t, "nft list table inet egressfw"); after == before {
			t.Errorf("nft table unchanged by a reload that added a tenant:\n%s", after)
		}
		// A bad file fails the reload visibly and keeps the service up.
		c.sh(t, "cp /etc/egressfw/egressfw.toml /root/good.toml && echo 'bogus = [' >> /etc/egressfw/egressfw.toml")
		if out, err := c.run(30*time.Second, "systemctl", "reload", "egressfw"); err == nil {
			t.Errorf("reload with a broken config succeeded:\n%s", out)
		}
		c.sh(t, "cp /root/good.toml /etc/egressfw/egressfw.toml")
		expectState(t, c, "active")
		// The reloads above read the edited file through the group.
		expectConfigPrivate(t, c)
	})

	t.Run("reinstall keeps the config private", func(t *testing.T) {
		c.sh(t, "cd /root && dpkg -i ./"+filepath.Base(deb))
		expectState(t, c, "active")
		expectConfigPrivate(t, c)
		c.sh(t, "systemctl reload egressfw")
		expectState(t, c, "active")
	})

	t.Run("tenant traffic", func(t *testing.T) {
		expectTenant(t, c, "http://192.0.2.10/", "", true)
		expectTenant(t, c, "http://10.1.2.3/", "", false)
		expectTenant(t, c, "http://public.systest/", "public.systest:80:192.0.2.10", true)
		expectTenant(t, c, "http://internal.systest/", "internal.systest:80:10.1.2.3", false)
		// The uid tenant added by the reload.
		expectUID(t, c, "http://192.0.2.10/", true)
		expectUID(t, c, "http://10.1.2.3/", false)
	})

	t.Run("status", func(t *testing.T) {
		out := c.sh(t, "egressfw status")
		for _, want := range []string{"healthy", "last reload", "webhooks", "batch", "10.1.2.3", "internal_address"} {
			if !strings.Contains(out, want) {
				t.Errorf("egressfw status as root lacks %q:\n%s", want, out)
			}
		}
		// The service's runtime directory and socket are its own and root's.
		if got := c.sh(t, "stat -c '%a %F' /run/egressfw /run/egressfw/status.sock"); got != "700 directory\n600 socket\n" {
			t.Errorf("runtime directory and socket: %q, want 700 and 600", got)
		}
		out, err := c.run(30*time.Second, "setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "egressfw", "status")
		if err == nil || !strings.Contains(out, "permission denied") || strings.Contains(out, "webhooks") {
			t.Errorf("egressfw status as uid 4242: %v\n%s\nwant a permission error and no report", err, out)
		}
	})

	t.Run("stop keeps rules", func(t *testing.T) {
		c.sh(t, "systemctl stop egressfw")
		expectState(t, c, "inactive")
		c.sh(t, "nft list table inet egressfw >/dev/null")
		// Fail closed: tenants stay blocked, even towards public addresses.
		expectUID(t, c, "http://192.0.2.10/", false)
		c.sh(t, "systemctl start egressfw")
		expectState(t, c, "active")
	})

	t.Run("purge removes rules and state", func(t *testing.T) {
		c.sh(t, "systemctl stop systest-tenant")
		c.sh(t, "apt-get purge -y egressfw")
		c.sh(t, `! nft list table inet egressfw 2>/dev/null
! ip rule | grep -q 'lookup 1515'
! ip -6 rule | grep -q 'lookup 1515'
[ -z "$(ip route show table 1515)" ]
[ ! -e /etc/egressfw ] && [ ! -e /var/lib/egressfw ] && [ ! -e /var/lib/private/egressfw ]
[ ! -e /lib/systemd/system/egressfw.service ] && [ ! -e /lib/systemd/system/egressfw.slice ]
[ ! -e /lib/systemd/system/egressfw-guard.service ] && [ ! -e /lib/systemd/system/egressfw-guard-watch.service ]
[ ! -e /etc/systemd/system/multi-user.target.wants/egressfw.service ]
! getent group egressfw-config
! dpkg-statoverride --list /etc/egressfw/egressfw.toml
! systemctl is-active egressfw`)
		// Without egressfw nothing filters the former uid tenant.
		expectUID(t, c, "http://10.1.2.3/", true)
	})
	t.Logf("total %v", time.Since(start).Round(time.Second))
}

// buildDeb runs `make deb` and returns the package's path.
func buildDeb(t *testing.T, top string) string {
	t.Helper()
	out, err := exec.Command("make", "-s", "-C", top, "deb").CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	deb := filepath.Join(top, lines[len(lines)-1])
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("make deb did not print the package path:\n%s", out)
	}
	return deb
}

// lintian fails the test on any lintian error (warnings are documented in
// packaging/deb/README.md).
func lintian(t *testing.T, deb string) {
	t.Helper()
	out, err := exec.Command("lintian", "--fail-on", "error", deb).CombinedOutput()
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	t.Logf("lintian:\n%s", out)
}

func expectState(t *testing.T, c *container, want string) {
	t.Helper()
	got, _ := c.run(30*time.Second, "systemctl", "is-active", "egressfw")
	if strings.TrimSpace(got) != want {
		st, _ := c.run(30*time.Second, "systemctl", "status", "--no-pager", "-n", "30", "egressfw")
		t.Fatalf("egressfw is %q, want %q\n%s", strings.TrimSpace(got), want, st)
	}
}

// expectTenant fetches url from a transient service in the tenant slice,
// the way an operator's service would run; resolve is a curl --resolve pin.
func expectTenant(t *testing.T, c *container, url, resolve string, allowed bool) {
	t.Helper()
	args := []string{"systemd-run", "--quiet", "--wait", "--pipe", "--collect",
		"--slice=egressfw-webhooks.slice", "-p", "Type=exec", "curl", "-sS", "-m", "5"}
	if resolve != "" {
		args = append(args, "--resolve", resolve)
	}
	out, err := c.run(30*time.Second, append(args, url)...)
	check(t, "tenant slice", url, out, err, allowed)
}

// expectUID fetches url as uid 4242, the uid tenant.
func expectUID(t *testing.T, c *container, url string, allowed bool) {
	t.Helper()
	out, err := c.run(30*time.Second, "setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "curl", "-sS", "-m", "5", url)
	check(t, "uid 4242", url, out, err, allowed)
}

// expectHost fetches url as root outside any tenant.
func expectHost(t *testing.T, c *container, url string, allowed bool) {
	t.Helper()
	out, err := c.run(30*time.Second, "curl", "-sS", "-m", "5", url)
	check(t, "non-tenant", url, out, err, allowed)
}

func check(t *testing.T, who, url, out string, err error, allowed bool) {
	t.Helper()
	ok := err == nil && strings.HasPrefix(out, "hello from ")
	if ok != allowed {
		t.Errorf("%s GET %s: allowed=%v, want %v (err %v)\n%s", who, url, ok, allowed, err, out)
	}
}

func syscallKill(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// goBinary is the go command that runs this test: on PATH, else where
// the repository's Makefile looks for it.
func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

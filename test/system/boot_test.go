//go:build system

package system

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// probeUnits installs two services, enabled at boot, that fetch the public
// and the internal server every half second and log the HTTP status (000:
// no response): one in the tenant slice, run as a transient user as a
// tenant should be, and one outside it.
const probeUnits = `
cat >/usr/local/bin/systest-probe <<'EOF'
#!/bin/sh
while :; do
	for u in http://192.0.2.10/ http://10.1.2.3/; do
		echo "$u $(curl -s -o /dev/null -m 2 -w '%{http_code}' "$u")"
	done
	sleep 0.5
done
EOF
chmod 755 /usr/local/bin/systest-probe
for unit in tenant host; do
	slice=
	[ $unit = tenant ] && slice=Slice=egressfw-webhooks.slice
	cat >/etc/systemd/system/systest-probe-$unit.service <<EOF
[Service]
$slice
DynamicUser=yes
ExecStart=/usr/local/bin/systest-probe
[Install]
WantedBy=multi-user.target
EOF
done
systemctl daemon-reload
systemctl enable systest-probe-tenant systest-probe-host
`

// TestBootFailsClosed: with a config that fails to load at boot, egressfw
// does not start, but the boot guard has installed its table before the
// tenant slice started: the tenant service started at boot runs with no
// egress, while a service outside the slice reaches the internal server.
// A ruleset flush (systemctl reload nftables) then, and again once egressfw
// is stopped, leaves the tenant without egress: the guard watch puts the
// table back. Fixing the config and starting egressfw brings the tenant
// back without restarting it, and an upgrade restarts egressfw but no
// tenant.
func TestBootFailsClosed(t *testing.T) {
	deb, helper, tarball := systemArtifacts(t)
	c := bootContainer(t, tarball)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run(20*time.Second, "journalctl", "--no-pager", "-b", "-n", "60", "-u", "egressfw", "-u", "egressfw-guard", "-u", "egressfw-guard-watch")
			t.Logf("journal:\n%s", out)
		}
	})
	c.copyIn(helper, "usr/local/bin/systest-httpd", 0o755)
	c.copyIn(deb, "root/"+filepath.Base(deb), 0o644)
	c.sh(t, netSetup)
	c.sh(t, "cd /root && apt-get install -y ./"+filepath.Base(deb))
	c.sh(t, "systemctl is-enabled egressfw-guard && systemctl is-active egressfw-guard")
	c.sh(t, reconfigure+"\ncp /etc/egressfw/egressfw.toml /root/good.toml")
	c.sh(t, probeUnits)
	// Edited but never checked: the next boot's egressfw cannot load it.
	c.sh(t, "echo 'bogus = [' >> /etc/egressfw/egressfw.toml")

	c.reboot()
	c.sh(t, netSetup) // the servers' namespace did not survive the reboot
	since := c.sh(t, "date +%s")
	time.Sleep(4 * time.Second)
	tenant := probeResults(t, c, "tenant", since)
	host := probeResults(t, c, "host", since)
	t.Logf("egressfw down at boot: tenant %v, outside the slice %v", tenant, host)
	for _, u := range []string{"http://192.0.2.10/", "http://10.1.2.3/"} {
		if len(tenant[u]) == 0 || strings.Trim(strings.Join(tenant[u], ""), "0") != "" {
			t.Errorf("egressfw down at boot: the tenant service fetched %s with statuses %v, want no response at all", u, tenant[u])
		}
		if len(host[u]) == 0 || host[u][len(host[u])-1] != "200" {
			t.Errorf("egressfw down at boot: the service outside the slice fetched %s with statuses %v, want 200", u, host[u])
		}
	}
	if state, _ := c.run(30*time.Second, "systemctl", "is-active", "egressfw"); strings.TrimSpace(state) == "active" {
		t.Fatalf("egressfw is active with a config that does not load")
	}
	c.sh(t, `systemctl is-active egressfw-guard
journalctl -b -u egressfw-guard -o cat | grep -q 'guarding with the defaults'
systemctl is-active systest-probe-tenant`)
	// systemd adopted the directory the guard created: nft finds the
	// slice's cgroup under the id the guard put in the map.
	if out := c.sh(t, "nft list map inet egressfw cgroup_l1"); !strings.Contains(out, `"egressfw.slice" comment "egressfw.slice" : goto deny`) {
		t.Errorf("the guard's map does not hold the id egressfw.slice has now:\n%s", out)
	}

	// A ruleset flush (what systemctl reload nftables does) while egressfw
	// is failed: the guard watch puts the guard's table back.
	flushHolds(t, c, "egressfw failed at boot")

	probePID := c.sh(t, "systemctl show -p MainPID --value systest-probe-tenant")
	c.sh(t, "cp /root/good.toml /etc/egressfw/egressfw.toml && systemctl reset-failed egressfw && systemctl start egressfw")
	expectServed(t, c, "egressfw started")

	// The same once egressfw is stopped (which keeps its rules); egressfw
	// then starts over the guard's table and takes over.
	c.sh(t, "systemctl stop egressfw")
	flushHolds(t, c, "egressfw stopped")
	c.sh(t, "systemctl start egressfw")
	expectServed(t, c, "egressfw started over the guard watch's table")

	// Stopping or restarting the guard would stop or restart every tenant.
	if out, err := c.run(30*time.Second, "systemctl", "restart", "egressfw-guard"); err == nil {
		t.Errorf("systemctl restart egressfw-guard was not refused:\n%s", out)
	}
	egressfwPID := c.sh(t, "systemctl show -p MainPID --value egressfw")
	c.sh(t, "cd /root && apt-get install -y --reinstall ./"+filepath.Base(deb))
	expectState(t, c, "active")
	if got := c.sh(t, "systemctl show -p MainPID --value egressfw"); got == egressfwPID {
		t.Errorf("an upgrade did not restart egressfw (MainPID %s)", strings.TrimSpace(got))
	}
	if got := c.sh(t, "systemctl show -p MainPID --value systest-probe-tenant"); got != probePID {
		t.Errorf("the boot fix or an upgrade restarted the tenant: MainPID %s -> %s", strings.TrimSpace(probePID), strings.TrimSpace(got))
	}
}

// flushHolds flushes the ruleset while egressfw is not active and checks
// that the guard watch puts its table back within 2 s, after which the
// tenant's probe gets no response at all for 3 s, while the service outside
// the slice still fetches the internal server.
func flushHolds(t *testing.T, c *container, when string) {
	t.Helper()
	c.sh(t, "systemctl is-active egressfw-guard-watch && ! systemctl is-active egressfw")
	ms := strings.TrimSpace(c.sh(t, `t0=$(date +%s%N); nft flush ruleset
for i in $(seq 400); do nft list table inet egressfw >/dev/null 2>&1 && break; sleep 0.005; done
nft list table inet egressfw >/dev/null 2>&1 || { echo missing; exit 0; }
echo $(( ($(date +%s%N) - t0) / 1000000 ))`))
	if ms == "missing" {
		t.Errorf("%s: egressfw's table is not back 2s after nft flush ruleset", when)
	} else {
		t.Logf("%s: the guard watch put the table back %s ms after nft flush ruleset", when, ms)
	}
	since := c.sh(t, "sleep 1.1; date +%s") // a whole second after the table was back
	time.Sleep(3 * time.Second)
	tenant, host := probeResults(t, c, "tenant", since), probeResults(t, c, "host", since)
	t.Logf("%s, after a flush: tenant %v, outside the slice %v", when, tenant, host)
	for _, u := range []string{"http://192.0.2.10/", "http://10.1.2.3/"} {
		if len(tenant[u]) == 0 || strings.Trim(strings.Join(tenant[u], ""), "0") != "" {
			t.Errorf("%s, after nft flush ruleset: the tenant fetched %s with statuses %v, want no response at all", when, u, tenant[u])
		}
		if len(host[u]) == 0 || host[u][len(host[u])-1] != "200" {
			t.Errorf("%s, after nft flush ruleset: the service outside the slice fetched %s with statuses %v, want 200", when, u, host[u])
		}
	}
	if !strings.Contains(c.sh(t, "journalctl -b -u egressfw-guard-watch -o cat"), "installed the guard's") {
		t.Errorf("%s: the guard watch did not log its install", when)
	}
}

// expectServed checks that egressfw is active and serves the tenant's
// probe: the public server, and egressfw's 403 for the internal one.
func expectServed(t *testing.T, c *container, when string) {
	t.Helper()
	expectState(t, c, "active")
	since := c.sh(t, "date +%s")
	time.Sleep(3 * time.Second)
	tenant := probeResults(t, c, "tenant", since)
	t.Logf("%s: tenant %v", when, tenant)
	if got := tenant["http://192.0.2.10/"]; len(got) == 0 || got[len(got)-1] != "200" {
		t.Errorf("%s: the tenant fetched the public server with %v, want 200", when, got)
	}
	if got := tenant["http://10.1.2.3/"]; len(got) == 0 || got[len(got)-1] != "403" {
		t.Errorf("%s: the tenant fetched the internal server with %v, want egressfw's 403", when, got)
	}
}

// probeResults reads a probe service's log since the epoch second since:
// the statuses per URL, oldest first.
func probeResults(t *testing.T, c *container, unit, since string) map[string][]string {
	t.Helper()
	out := c.sh(t, "journalctl -o cat -u systest-probe-"+unit+" --since @"+strings.TrimSpace(since))
	res := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if u, code, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.HasPrefix(u, "http://") {
			res[u] = append(res[u], code)
		}
	}
	return res
}

// reboot powers the container off and boots it again from its rootfs.
func (c *container) reboot() {
	c.t.Helper()
	_, _ = c.run(30*time.Second, "systemctl", "poweroff") // the connection may die first
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		c.t.Fatalf("the container did not power off\n%s", c.console())
	}
	c.boot()
}

// systemArtifacts builds the package and the test upstream and returns
// them with the cached rootfs tarball. It skips the test unless root.
func systemArtifacts(t *testing.T) (deb, helper, tarball string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: debootstrap, systemd-nspawn, cgroups")
	}
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	deb = buildDeb(t, top)
	helper = filepath.Join(t.TempDir(), "systest-httpd")
	if out, err := exec.Command(goBinary(), "build", "-tags", "system", "-o", helper, "./httpd").CombinedOutput(); err != nil {
		t.Fatalf("building the test upstream: %v\n%s", err, out)
	}
	return deb, helper, cachedRootfs(t)
}

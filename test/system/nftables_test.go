//go:build system

package system

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostWeb is a web server on the container's own address: internal to every
// tenant (the host's own addresses always are).
const hostWeb = "http://10.1.2.1/"

// TestNftablesService: with Debian's nftables.service enabled on its stock
// /etc/nftables.conf (which starts with "flush ruleset"), enabling,
// reloading and restarting it leave a process in the tenant slice denied
// the host's own web server: egressfw puts its table back each time, logs
// it and counts it. Started together, nftables.service runs first, so
// egressfw's table needs no restore after a boot-like start.
func TestNftablesService(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: debootstrap, systemd-nspawn, cgroups")
	}
	c := installedContainer(t)
	c.sh(t, "systemd-run --quiet --unit=systest-hostweb /usr/local/bin/systest-httpd -http 10.1.2.1:80")
	c.sh(t, `for i in $(seq 50); do curl -s -m 1 `+hostWeb+` >/dev/null && exit 0; sleep 0.1; done; exit 1`)
	expectHost(t, c, hostWeb, true) // the server answers a non-tenant
	expectTenant(t, c, hostWeb, "", false)
	if c.sh(t, "systemctl is-enabled nftables || true") == "enabled\n" {
		t.Fatal("nftables.service is enabled before the test enables it")
	}
	if got := c.sh(t, "systemctl show -p After --value egressfw"); !strings.Contains(got, "nftables.service") {
		t.Errorf("egressfw.service is not ordered after nftables.service: After=%s", got)
	}

	restores := 0
	for _, step := range []struct{ name, cmd string }{
		{"enable --now", "systemctl enable --now nftables"},
		{"reload", "systemctl reload nftables"},
		{"restart", "systemctl restart nftables"},
	} {
		t.Run(step.name, func(t *testing.T) {
			c.sh(t, step.cmd)
			// restart is a stop (nft flush ruleset) and a start (nft -f):
			// one restore each, or one if they came close enough together.
			if !waitRestores(c, restores+1, 5*time.Second) {
				t.Errorf("no restore logged after systemctl %s nftables", step.name)
			}
			time.Sleep(500 * time.Millisecond) // restart's second restore, if any
			restores = countRestores(c)
			expectTenant(t, c, hostWeb, "", false)
			expectHost(t, c, hostWeb, true)
			c.sh(t, "nft list table inet egressfw >/dev/null && nft list table inet filter >/dev/null")
			metrics := c.sh(t, "curl -sS -m 5 http://127.0.0.1:9464/metrics")
			if want := `egressfw_ruleset_restored_total{result="ok"} ` + strconv.Itoa(restores); !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %q", want)
			}
		})
	}
	line := c.sh(t, "journalctl -u egressfw -o cat | grep 'changed by another program; restored' | tail -1")
	for _, want := range []string{`"level":"WARN"`, `"changes":"delete table (egressfw)`, `"by":"nft[`} {
		if !strings.Contains(line, want) {
			t.Errorf("restore line lacks %s: %s", want, line)
		}
	}

	t.Run("started together, nftables first", func(t *testing.T) {
		c.sh(t, "systemctl stop egressfw nftables") // nftables' stop flushes the ruleset
		before := countRestores(c)
		// One transaction with both start jobs, as at boot (systemctl start
		// A B would queue one job after the other).
		c.sh(t, `printf '[Unit]\nWants=egressfw.service nftables.service\n' >/run/systemd/system/systest-boot.target
systemctl daemon-reload
systemctl start systest-boot.target`)
		expectState(t, c, "active")
		time.Sleep(time.Second) // a restore, if the order were wrong, is logged by then
		if n := countRestores(c); n != before {
			t.Errorf("%d restores after starting both: nftables.service's flush ran after egressfw applied its rules", n-before)
		}
		expectTenant(t, c, hostWeb, "", false)
	})
	if t.Failed() {
		out, _ := c.run(20*time.Second, "journalctl", "--no-pager", "-n", "60", "-u", "egressfw", "-u", "nftables")
		t.Logf("journal:\n%s", out)
	}
}

// countRestores counts egressfw's restore lines in the journal.
func countRestores(c *container) int {
	out, _ := c.run(30*time.Second, "/bin/sh", "-c", "journalctl -u egressfw -o cat | grep -c 'changed by another program; restored'")
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}

func waitRestores(c *container, n int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if countRestores(c) >= n {
			return true
		}
	}
	return false
}

// installedContainer builds the package and the test upstream, boots a
// container, sets up its network (netSetup) and installs the package.
func installedContainer(t *testing.T) *container {
	t.Helper()
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	deb := buildDeb(t, top)
	helper := filepath.Join(t.TempDir(), "systest-httpd")
	if out, err := exec.Command(goBinary(), "build", "-tags", "system", "-o", helper, "./httpd").CombinedOutput(); err != nil {
		t.Fatalf("building the test upstream: %v\n%s", err, out)
	}
	c := bootContainer(t, cachedRootfs(t))
	c.copyIn(helper, "usr/local/bin/systest-httpd", 0o755)
	c.copyIn(deb, "root/"+filepath.Base(deb), 0o644)
	c.sh(t, netSetup)
	c.sh(t, "cd /root && apt-get install -y ./"+filepath.Base(deb))
	expectState(t, c, "active")
	return c
}

//go:build system

package system

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// expectConfigPrivate checks that the config is root:egressfw-config 0640
// (kept so by a dpkg statoverride), that the running service holds that
// group, and that an unprivileged user can neither read the file nor have
// egressfw read it for them: the allow_internal names in it are the
// operator's map of the network.
func expectConfigPrivate(t *testing.T, c *container) {
	t.Helper()
	const conf = "/etc/egressfw/egressfw.toml"
	if got := strings.TrimSpace(c.sh(t, "stat -c '%a %U %G' "+conf)); got != "640 root egressfw-config" {
		t.Errorf("%s is %q, want \"640 root egressfw-config\"", conf, got)
	}
	if got := strings.TrimSpace(c.sh(t, "dpkg-statoverride --list "+conf)); got != "root egressfw-config 640 "+conf {
		t.Errorf("statoverride of %s: %q", conf, got)
	}
	gid := strings.TrimSpace(c.sh(t, "getent group egressfw-config | cut -d: -f3"))
	groups := c.sh(t, `grep '^Groups:' /proc/$(systemctl show -p MainPID --value egressfw)/status`)
	if gid == "" || !slices.Contains(strings.Fields(groups)[1:], gid) {
		t.Errorf("the service's groups %q lack egressfw-config (gid %q)", strings.TrimSpace(groups), gid)
	}
	for _, cmd := range [][]string{{"cat", conf}, {"/usr/sbin/egressfw", "check-config", "--config", conf}} {
		args := append([]string{"setpriv", "--reuid=4242", "--regid=4242", "--clear-groups"}, cmd...)
		out, err := c.run(30*time.Second, args...)
		if err == nil || !strings.Contains(out, "ermission denied") {
			t.Errorf("uid 4242 ran %v: err %v, output %q; want permission denied", cmd, err, out)
		}
	}
}

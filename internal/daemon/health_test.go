package daemon

import (
	"errors"
	"strings"
	"testing"
)

// TestFirewallHealth: the watchdog's view of the kernel side names what is
// wrong, and a successful restore clears a failed one.
func TestFirewallHealth(t *testing.T) {
	f := &firewall{}
	f.alive.Store(true)
	refused := errors.New("apply ruleset: operation not permitted")
	steps := []struct {
		name  string
		do    func()
		wantE string // "" for healthy
	}{
		{"running", func() {}, ""},
		{"restore refused", func() { f.unrestored.Store(&refused) },
			"nftables ruleset changed by another program and not restored: apply ruleset: operation not permitted"},
		{"restored", func() { f.unrestored.Store(nil) }, ""},
		{"cgroup watcher gone", func() { f.alive.Store(false) }, "cgroup watcher stopped"},
	}
	for _, s := range steps {
		s.do()
		err := f.health()
		switch {
		case s.wantE == "" && err != nil:
			t.Errorf("%s: health() = %v, want nil", s.name, err)
		case s.wantE != "" && (err == nil || !strings.Contains(err.Error(), s.wantE)):
			t.Errorf("%s: health() = %v, want %q", s.name, err, s.wantE)
		}
	}
}

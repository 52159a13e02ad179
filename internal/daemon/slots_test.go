package daemon

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
)

// namesConfig is the default config with tenants of the given names; slot
// planning reads only the names, listener.port and intercept_ports.
func namesConfig(names ...string) *config.Config {
	cfg := config.Default()
	for _, n := range names {
		cfg.Tenants = append(cfg.Tenants, config.Tenant{Name: n})
	}
	return &cfg
}

// fakeClock is a slotTable clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                    { return c.t }
func (c *fakeClock) advance(d time.Duration)           { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock                         { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func (s *slotTable) withClock(c *fakeClock) *slotTable { s.now = c.now; return s }

func TestSlotsStableAcrossReloads(t *testing.T) {
	clock := newFakeClock()
	st := newSlotTable(3).withClock(clock)
	steps := []struct {
		name    string
		tenants []string
		want    map[string]uint32
		wantErr bool
	}{
		{"first load", []string{"a", "b", "c"}, map[string]uint32{"a": 1, "b": 2, "c": 3}, false},
		{"reorder keeps slots", []string{"c", "a", "b"}, map[string]uint32{"a": 1, "b": 2, "c": 3}, false},
		{"remove frees slot", []string{"a", "c"}, map[string]uint32{"a": 1, "c": 3}, false},
		{"new tenant takes lowest free", []string{"d", "a", "c"}, map[string]uint32{"a": 1, "c": 3, "d": 2}, false},
		{"over capacity fails", []string{"a", "c", "d", "e"}, nil, true},
		{"failed plan left table alone", []string{"a", "c", "d"}, map[string]uint32{"a": 1, "c": 3, "d": 2}, false},
	}
	for _, s := range steps {
		// Each reload comes after the previous one's freed slots drained;
		// TestSlotsDrainBeforeReuse covers reloads in quick succession.
		clock.advance(slotDrain)
		cfg := namesConfig(s.tenants...)
		got, err := st.plan(cfg)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: err = %v", s.name, err)
		}
		if err != nil {
			continue
		}
		if ids := slotIDs(t, cfg, got); !reflect.DeepEqual(ids, s.want) {
			t.Fatalf("%s: slots = %v, want %v", s.name, ids, s.want)
		}
		st.commit(got)
	}
}

// slotIDs returns the slot number of each tenant in slots, and fails t
// unless each slot's port is cfg's listener port for it.
func slotIDs(t *testing.T, cfg *config.Config, slots map[string]config.Slot) map[string]uint32 {
	t.Helper()
	ids := map[string]uint32{}
	for name, s := range slots {
		if want := int(cfg.Listener.Port) + int(s.ID) - 1; int(s.Port) != want {
			t.Errorf("tenant %s: slot %d has port %d, want %d", name, s.ID, s.Port, want)
		}
		ids[name] = s.ID
	}
	return ids
}

// TestSlotsDrainBeforeReuse: a slot freed by a reload goes to no other
// tenant, neither in that reload nor in the next ones, until slotDrain has
// passed; a tenant of the same name that comes back gets it back.
func TestSlotsDrainBeforeReuse(t *testing.T) {
	steps := []struct {
		name    string
		after   time.Duration // since the previous step
		tenants []string
		want    map[string]uint32
		wantErr string
	}{
		{"first load", 0, []string{"a", "b", "c"}, map[string]uint32{"a": 1, "b": 2, "c": 3}, ""},
		{"b leaves, d arrives in the same reload", time.Second, []string{"a", "c", "d"}, map[string]uint32{"a": 1, "c": 3, "d": 4}, ""},
		{"next reload: slot 2 still draining", time.Second, []string{"a", "c", "d", "e"}, map[string]uint32{"a": 1, "c": 3, "d": 4, "e": 5}, ""},
		{"b comes back to its own slot", time.Second, []string{"a", "b", "c", "d", "e"}, map[string]uint32{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, ""},
		{"b leaves again", time.Second, []string{"a", "c", "d", "e"}, map[string]uint32{"a": 1, "c": 3, "d": 4, "e": 5}, ""},
		{"drained: slot 2 reused", slotDrain, []string{"a", "c", "d", "e", "f"}, map[string]uint32{"a": 1, "c": 3, "d": 4, "e": 5, "f": 2}, ""},
		{"full while draining", time.Second, []string{"a", "c", "d", "g", "h", "i"}, nil, `no free tenant slot for "h": 4 in use, 2 draining`},
	}
	clock := newFakeClock()
	st := newSlotTable(6).withClock(clock)
	for _, s := range steps {
		clock.advance(s.after)
		cfg := namesConfig(s.tenants...)
		got, err := st.plan(cfg)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("%s: err = %v, want %q", s.name, err, s.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if ids := slotIDs(t, cfg, got); !reflect.DeepEqual(ids, s.want) {
			t.Fatalf("%s: slots = %v, want %v", s.name, ids, s.want)
		}
		st.commit(got)
	}
}

// TestSlotPorts: the listener port of every slot in use is checked against
// the config being applied (not a port range 1..N): a new tenant skips a
// slot whose port is an intercept port, and a tenant whose slot would have
// no valid port after a reload fails the reload, naming it.
func TestSlotPorts(t *testing.T) {
	clock := newFakeClock()
	st := newSlotTable(4095).withClock(clock)
	first := namesConfig("a", "b", "c")
	slots, err := st.plan(first)
	if err != nil {
		t.Fatal(err)
	}
	st.commit(slots)
	st.commit(map[string]config.Slot{"c": slots["c"]}) // a and b leave: c keeps slot 3
	clock.advance(slotDrain)                           // and their slots drain

	tests := []struct {
		name    string
		cfg     func() *config.Config
		want    map[string]uint32
		wantErr string
	}{
		{"listener.port raised past the highest slot", func() *config.Config {
			cfg := namesConfig("c")
			cfg.Listener.Port = 65534 // valid for one tenant, but c is slot 3: port 65536
			return cfg
		}, nil, `tenant "c" holds slot 3: its listener port would be 65536, past 65535 (listener.port 65534)`},
		{"intercept port on a slot in use", func() *config.Config {
			cfg := namesConfig("c")
			cfg.Listener.InterceptPorts = []uint16{80, 443, 15003}
			return cfg
		}, nil, `tenant "c" holds slot 3: its listener port 15003 is in listener.intercept_ports`},
		{"new tenants skip a slot whose port is intercepted", func() *config.Config {
			cfg := namesConfig("c", "x", "y")
			cfg.Listener.InterceptPorts = []uint16{80, 443, 15001}
			return cfg
		}, map[string]uint32{"c": 3, "x": 2, "y": 4}, ""},
		{"new tenants stop at port 65535", func() *config.Config {
			cfg := namesConfig("c", "x")
			cfg.Listener.Port = 65533 // c: 65535; slots 1 and 2 are free
			return cfg
		}, map[string]uint32{"c": 3, "x": 1}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			got, err := st.plan(cfg)
			if expectErr(t, err, tc.wantErr) {
				return
			}
			if ids := slotIDs(t, cfg, got); !reflect.DeepEqual(ids, tc.want) {
				t.Fatalf("slots = %v, want %v", ids, tc.want)
			}
		})
	}
	full := namesConfig("c", "x", "y", "z")
	full.Listener.Port = 65533
	if _, err := st.plan(full); err == nil || !strings.Contains(err.Error(), `no free tenant slot for "z"`) {
		t.Fatalf("four tenants from port 65533: err = %v, want no free slot for z", err)
	}
}

// expectErr fails t unless err contains want, or, with want "", is nil.
// It reports whether an error was wanted (the caller stops there).
func expectErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	return true
}

// TestSlotsRecovered: slots read from the table an earlier egressfw left
// (slotTable.recover) are kept across a restart with a reordered, edited
// tenant list; a tenant the new config drops has its slot drain before a
// new tenant gets it; a slot without a valid port is renumbered.
func TestSlotsRecovered(t *testing.T) {
	clock := newFakeClock()
	st := newSlotTable(4095).withClock(clock)
	cfg := namesConfig("d", "c", "a", "e")
	cfg.Listener.Port = 15001
	installed := map[string]uint32{"a": 1, "b": 2, "c": 3, "d": 4, "z": 65000}
	if dropped := st.recover(cfg, installed); !reflect.DeepEqual(dropped, []string{"z"}) {
		t.Errorf("recover dropped %v, want [z] (slot 65000 has no port)", dropped)
	}
	got, err := st.plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"a": 1, "c": 3, "d": 4, "e": 5} // 2 is b's, draining
	if ids := slotIDs(t, cfg, got); !reflect.DeepEqual(ids, want) {
		t.Fatalf("after the restart: slots = %v, want %v", ids, want)
	}
	st.commit(got)
	clock.advance(time.Second)
	next := namesConfig("d", "c", "a", "e", "f")
	if got, err = st.plan(next); err != nil {
		t.Fatal(err)
	}
	if ids := slotIDs(t, next, got); ids["f"] == 2 {
		t.Errorf("b's slot went to f a second after the restart: %v", ids)
	}
}

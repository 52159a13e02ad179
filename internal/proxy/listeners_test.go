package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/proxy/proxytest"
)

func tenantsConfig(t *testing.T, n int) *config.Config {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[tenant]]\nname = \"t%d\"\nuids = [%d]\n", i, 2000+i)
	}
	cfg, err := config.Parse([]byte(b.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOpenListeners: the listeners of many tenants are opened (by several
// workers) and each gets an accept loop; when one tenant's socket cannot be
// opened, the apply fails naming it and no socket of that apply stays open.
func TestOpenListeners(t *testing.T) {
	tests := []struct {
		name     string
		tenants  int
		failSlot uint32 // 0: none fails
		wantErr  string
	}{
		{name: "all open", tenants: 200},
		{name: "one fails, none stays", tenants: 200, failSlot: 137, wantErr: `listen for tenant "t136": address already in use`},
		{name: "first fails", tenants: 5, failSlot: 1, wantErr: `listen for tenant "t0": address already in use`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tenantsConfig(t, tc.tenants)
			opened := &proxytest.Kernel{Fail: func(ap netip.AddrPort) error {
				if tc.failSlot != 0 && ap.Port() == cfg.Listener.Port+uint16(tc.failSlot)-1 && ap.Addr().Is6() {
					return syscall.EADDRINUSE
				}
				return nil
			}}
			s := New(Options{Log: slog.New(slog.DiscardHandler), Kernel: opened})
			err := s.Listen(context.Background(), snapshotFor(t, s, cfg))
			defer s.Close()
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if n := opened.StillOpen(); n != 0 {
					t.Errorf("%d sockets of the failed apply still open", n)
				}
				if n := s.listenerSockets(); n != 0 {
					t.Errorf("%d listeners installed by the failed apply", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := 2 * tc.tenants
			if n := s.listenerSockets(); n != want {
				t.Errorf("listening sockets = %d, want %d", n, want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for s.accepting.Load() != int32(want) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if n := s.accepting.Load(); n != int32(want) {
				t.Errorf("accept loops = %d, want %d", n, want)
			}
		})
	}
}

// TestFlippedListenerRestored: a reload that moves a tenant from loopback
// to wildcard listening (it gained interfaces) closes the old sockets
// first; if the new ones cannot be opened, the old ones are back, since the
// running config still sends the tenant's connections there, and they are
// served with the running config.
func TestFlippedListenerRestored(t *testing.T) {
	parse := func(extra string) *config.Config {
		cfg, err := config.Parse([]byte("[[tenant]]\nname = \"web\"\nuids = [2000]\n"+extra), "test")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	local, forwarded := parse(""), parse("interfaces = [\"docker0\"]\n")
	k := &proxytest.Kernel{Fail: func(ap netip.AddrPort) error {
		if ap.Addr().IsUnspecified() {
			return syscall.EADDRINUSE
		}
		return nil
	}}
	logs := &proxytest.Logs{}
	s := New(Options{Log: logs.Logger(), Kernel: k})
	defer s.Close()
	running := snapshotFor(t, s, local)
	if err := s.Listen(context.Background(), running); err != nil {
		t.Fatal(err)
	}
	s.Install(running)
	if err := s.Listen(context.Background(), snapshotFor(t, s, forwarded)); err == nil {
		t.Fatal("the wildcard listen cannot succeed here, yet the apply did")
	}
	s.mu.Lock()
	pl := s.listeners[1]
	s.mu.Unlock()
	if pl == nil || pl.wild || len(pl.socks) != 2 {
		t.Fatalf("after the failed reload the tenant's listener is %+v, want its two loopback sockets back", pl)
	}
	// Its two loopback sockets, and its DNS listeners' (UDP and TCP each).
	if n := k.StillOpen(); n != 6 {
		t.Errorf("%d sockets open after the failed reload, want the 6 restored ones", n)
	}
	if len(pl.dns) != 2 {
		t.Errorf("%d DNS listeners restored, want 2", len(pl.dns))
	}
	for _, ln := range pl.socks {
		// Served with the running config: bytes that are neither TLS nor
		// HTTP are reset and logged as tenant web's.
		k.SetOrig("192.0.2.1:443")
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatalf("restored listener %v: %v", ln.Addr(), err)
		}
		_, _ = c.Write([]byte("SSH-2.0-x\r\n"))
		_, _ = io.ReadAll(c)
		c.Close()
		logs.WaitFields(t, map[string]any{"tenant": "web", "reason": "unknown_protocol", "src": c.LocalAddr().String()})
	}
	s.Close()
	if !s.Drain(2 * time.Second) {
		t.Error("connections still handled after the test")
	}
}

// TestConnectionBeforeFirstConfig: listeners accept before the first
// config is installed (at start, while the rules are applied); anyone who
// can reach the port then, a local process on loopback say, gets a reset,
// logged as reaching a slot no tenant holds, and the daemon does not crash.
func TestConnectionBeforeFirstConfig(t *testing.T) {
	cfg := tenantsConfig(t, 1)
	k := &proxytest.Kernel{}
	k.SetOrig("192.0.2.1:443")
	logs := &proxytest.Logs{}
	s := New(Options{Log: logs.Logger(), Kernel: k})
	if err := s.Listen(context.Background(), snapshotFor(t, s, cfg)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.mu.Lock()
	addr := s.listeners[1].socks[0].Addr().String()
	s.mu.Unlock()
	// The reset can beat connect(2) to completion: a dial error counts too.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("err = %v, want a reset", err)
	}
	line := logs.WaitFields(t, map[string]any{"tenant": "-", "reason": "tenant_removed", "decision": "deny", "orig_dst": "192.0.2.1:443"})
	if d := fmt.Sprint(line["detail"]); !strings.Contains(d, "no tenant holds slot 1") {
		t.Errorf("detail %q does not name the slot", d)
	}
	s.Close()
	if !s.Drain(2 * time.Second) {
		t.Error("the refused connection is still being handled")
	}
}

// snapshotFor builds the snapshot a first apply of cfg would install: the
// tenants in slots 1..N.
func snapshotFor(t testing.TB, s *Proxy, cfg *config.Config) *Snapshot {
	t.Helper()
	slots := map[string]config.Slot{}
	for i, tn := range cfg.Tenants {
		sl, err := cfg.Listener.SlotOf(uint32(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		slots[tn.Name] = sl
	}
	snap, err := s.Build(cfg, slots)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

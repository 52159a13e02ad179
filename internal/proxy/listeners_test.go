package proxy

import (
	"context"
	"fmt"
	"log/slog"
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

// snapshotFor builds the snapshot a first apply of cfg would install: the
// tenants in slots 1..N.
func snapshotFor(t *testing.T, s *Proxy, cfg *config.Config) *Snapshot {
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

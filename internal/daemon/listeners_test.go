package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
)

// openedSockets tracks the listening sockets a test's listen seam opened
// and which of them are still open.
type openedSockets struct {
	mu    sync.Mutex
	socks []*net.TCPListener
}

func (o *openedSockets) stillOpen() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, ln := range o.socks {
		// A closed listener fails SetDeadline with ErrClosed.
		if err := ln.SetDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
			n++
		}
	}
	return n
}

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
			s := newServer(slog.New(slog.DiscardHandler), newMetrics("test"), nil)
			opened := &openedSockets{}
			s.listen = func(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
				if tc.failSlot != 0 && ap.Port() == cfg.Listener.Port+uint16(tc.failSlot)-1 && ap.Addr().Is6() {
					return nil, syscall.EADDRINUSE
				}
				ln, err := listenEphemeral(ctx, ap)
				if err != nil {
					return nil, err
				}
				opened.mu.Lock()
				opened.socks = append(opened.socks, ln)
				opened.mu.Unlock()
				return ln, nil
			}
			err := s.openListeners(context.Background(), snapshotFor(t, s, cfg))
			defer s.closeAllListeners()
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if n := opened.stillOpen(); n != 0 {
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

// snapshotFor builds the snapshot a first apply of cfg would install.
func snapshotFor(t *testing.T, s *server, cfg *config.Config) *snapshot {
	t.Helper()
	slots, err := newSlotTable(4095).plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.buildSnapshot(cfg, slots, 0)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// listenEphemeral stands in for tproxy.Listen: a plain listener on the
// address asked for, any free port.
func listenEphemeral(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ap.Addr(), 0).String())
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

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
				if tc.failSlot != 0 && ap.Port() == listenerPort(cfg, tc.failSlot) && ap.Addr().Is6() {
					return nil, syscall.EADDRINUSE
				}
				ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), 0)))
				if err != nil {
					return nil, err
				}
				opened.mu.Lock()
				opened.socks = append(opened.socks, ln)
				opened.mu.Unlock()
				return ln, nil
			}
			slots, err := newSlotTable(4095).plan(tenantNames(cfg))
			if err != nil {
				t.Fatal(err)
			}
			snap, err := s.buildSnapshot(cfg, slots, 0)
			if err != nil {
				t.Fatal(err)
			}
			err = s.openListeners(context.Background(), snap)
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

func tenantNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Tenants))
	for i, t := range cfg.Tenants {
		names[i] = t.Name
	}
	return names
}

// TestFlippedListenerRestored: a reload that moves a tenant from loopback
// to wildcard listening (it gained interfaces) closes the old sockets
// first; if the new ones cannot be opened, the old ones are back, since the
// running config still sends the tenant's connections there.
func TestFlippedListenerRestored(t *testing.T) {
	parse := func(extra string) *config.Config {
		cfg, err := config.Parse([]byte("[[tenant]]\nname = \"web\"\nuids = [2000]\n"+extra), "test")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	local, forwarded := parse(""), parse("interfaces = [\"docker0\"]\n")
	s := newServer(slog.New(slog.DiscardHandler), newMetrics("test"), nil)
	s.listen = func(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
		if ap.Addr().IsUnspecified() {
			return nil, syscall.EADDRINUSE
		}
		return net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), 0)))
	}
	defer s.closeAllListeners()
	apply := func(cfg *config.Config) error {
		slots, err := newSlotTable(4095).plan(tenantNames(cfg))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := s.buildSnapshot(cfg, slots, 0)
		if err != nil {
			t.Fatal(err)
		}
		return s.openListeners(context.Background(), snap)
	}
	if err := apply(local); err != nil {
		t.Fatal(err)
	}
	if err := apply(forwarded); err == nil {
		t.Fatal("the wildcard listen cannot succeed here, yet the apply did")
	}
	s.mu.Lock()
	pl := s.listeners[1]
	s.mu.Unlock()
	if pl == nil || pl.wild || len(pl.socks) != 2 {
		t.Fatalf("after the failed reload the tenant's listener is %+v, want its two loopback sockets back", pl)
	}
	for _, ln := range pl.socks {
		// Served: accepted (then reset, as no config is installed here),
		// not refused.
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("restored listener %v: %v", ln.Addr(), err)
		}
		if c != nil {
			c.Close()
		}
	}
}

// TestConnectionBeforeFirstConfig: listeners accept before the first
// config is installed (at start, while the rules are applied); anyone who
// can reach the port then, a local process on loopback say, gets a reset,
// and the daemon does not crash.
func TestConnectionBeforeFirstConfig(t *testing.T) {
	cfg := tenantsConfig(t, 1)
	s := newServer(slog.New(slog.DiscardHandler), newMetrics("test"), nil)
	s.listen = func(ctx context.Context, ap netip.AddrPort) (*net.TCPListener, error) {
		return net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), 0)))
	}
	s.origDst = func(*net.TCPConn) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.1:443") }
	slots, err := newSlotTable(4095).plan(tenantNames(cfg))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.buildSnapshot(cfg, slots, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.openListeners(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	defer s.closeAllListeners()
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
	s.closeAllListeners()
	if !s.drain(2 * time.Second) {
		t.Error("the refused connection is still being handled")
	}
}

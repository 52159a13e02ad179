package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/config"
)

// TestReloadNeverJudgesByAnotherTenant: a reload removes tenant "strict"
// (www.example.com only) and adds tenant "wide" (any public name). The
// kernel sends wide's connections to wide's port as soon as the rules are
// in, before the new snapshot is installed. A connection arriving in that
// moment must not be judged by strict's policy (it was, when wide inherited
// strict's slot and so its live listener and snapshot entry); and once the
// reload is done it is served as wide's.
func TestReloadNeverJudgesByAnotherTenant(t *testing.T) {
	h := newHarness(t, "")
	parse := func(body string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(fmt.Sprintf(body, h.dns.Addr)), "reuse")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	first := parse(harnessConfig)
	strict := "name = \"strict\"\nuids = [1002]\nallow_domains = [\"www.example.com\"]\n"
	if !strings.Contains(harnessConfig, strict) {
		t.Fatal("harnessConfig no longer has tenant strict as this test expects")
	}
	second := parse(strings.Replace(harnessConfig, strict, "name = \"wide\"\nuids = [1004]\n", 1))

	d := &Daemon{log: slog.New(slog.DiscardHandler), srv: h.srv, slots: newSlotTable(4095)}
	slots, err := d.slots.plan(first) // what the harness installed: a fresh start's slots
	if err != nil {
		t.Fatal(err)
	}
	d.slots.commit(slots)
	d.gen.Store(&generation{cfg: first, slots: slots})

	var between map[string]any
	d.rules = rulesFunc(func(_ context.Context, gen *generation, ready func() error) error {
		if err := ready(); err != nil {
			return err
		}
		between = h.requestOn(portOf(t, h.srv, gen.slots["wide"].ID), "198.51.100.10:80", "example.com")
		return nil
	})
	if err := d.apply(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	if between["tenant"] == "strict" {
		t.Errorf("a connection of tenant wide, arriving after the rules changed, was judged as tenant strict: %v", between)
	}
	after := h.requestOn(portOf(t, h.srv, d.gen.Load().slots["wide"].ID), "198.51.100.10:80", "example.com")
	if after["tenant"] != "wide" || after["decision"] != "allow" {
		t.Errorf("after the reload, wide's connection was logged as %v, want tenant wide allowed", after)
	}
}

// portOf returns the IPv4 listener address of slot.
func portOf(t *testing.T, s *server, slot uint32) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if pl := s.listeners[slot]; pl != nil {
		return pl.socks[0].Addr().String()
	}
	t.Fatalf("no listener for slot %d", slot)
	return ""
}

// requestOn sends an HTTP request for host to the listener at addr, as if
// addressed to orig, and returns the connection's log line. The client
// binds a loopback address of its own, by which the line is found also
// when the connection is reset before connect() returns.
func (h *harness) requestOn(addr, orig, host string) map[string]any {
	h.t.Helper()
	h.kernel.setOrig(orig)
	src := netip.AddrFrom4([4]byte{127, 0, byte(1 + reqSeq.Add(1)%250), byte(2 + rand.IntN(250))})
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	if c, err := d.Dial("tcp", addr); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
		_, _ = io.ReadAll(c) // a response, or a reset
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range h.logLines() {
			if ap, err := netip.ParseAddrPort(fmt.Sprint(m["src"])); err == nil && ap.Addr() == src {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("no log line for the connection from %s in:\n%s", src, h.logs.Bytes())
	return nil
}

var reqSeq atomic.Int32

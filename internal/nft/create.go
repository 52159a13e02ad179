package nft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/egressfw/egressfw/internal/nft/route"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/egressfw/egressfw/internal/nft/events"
	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Guarding. A running egressfw puts its table back after another program
// removes it (watch.go); a stopped one cannot. The boot guard and the guard
// watch (egressfw guard [--watch]) install the rules a stopped egressfw
// leaves, and must never replace the table of an egressfw that runs or is
// starting: Create adds the table only if it does not exist, in a
// transaction that the kernel refuses whole if it does; WatchTable tells
// the guard watch when to look.

// Create installs spec's table, and then its policy routing, only if table
// inet <spec.Table> does not exist: the batch begins by creating the table
// exclusively (nft's "create table"), so if anyone has made a table of
// that name by the time the kernel runs it, the kernel refuses all of it
// and Create reports false with no error. It changes nothing else of the
// Manager: no Watch restores what it created.
func (m *Manager) Create(spec nftspec.Spec, ids nftspec.CgroupIDs) (bool, error) {
	if err := spec.Validate(); err != nil {
		return false, fmt.Errorf("create table: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.b.Queue().CreateTable(&nftables.Table{Name: spec.Table, Family: nftables.TableFamilyINet})
	if err := program(rules.Build(&spec, ids), m.b.Queue(), spec.Table, &installed{}, nil); err != nil {
		return false, fmt.Errorf("create table inet %s: %w", spec.Table, err)
	}
	if spec.Containers {
		if err := m.queueBridge(rules.BuildBridge(&spec, m.containers), spec.Table, true); err != nil {
			return false, fmt.Errorf("create table inet %s: %w", spec.Table, err)
		}
	}
	if err := m.b.Commit(); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, fmt.Errorf("create table inet %s: %w", spec.Table, err)
	}
	// Until the ip rule is there, marked packets are routed like any
	// other and dropped by the postrouting rule: closed, not open.
	if err := route.Install(m.nl, routingOf(&spec)); err != nil {
		return true, fmt.Errorf("create table inet %s: %w", spec.Table, err)
	}
	return true, nil
}

// WatchTable calls changed, on its own goroutine, after every committed
// nftables transaction (by any process, this Manager's included) that
// changed table inet <table>, and when notifications were lost, until ctx
// ends or the Manager is closed. It returns once it receives them. It
// shares its socket with Watch: a Manager runs one of them.
func (m *Manager) WatchTable(ctx context.Context, table string, changed func()) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watching {
		return errors.New("watch table: already watching")
	}
	if err := m.mon.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("watch table: join nftables notifications: %w", err)
	}
	m.watching = true
	context.AfterFunc(ctx, func() { _ = m.mon.SetReadDeadline(time.Now()) })
	go func() {
		touched := false
		for {
			msgs, err := m.mon.Receive()
			if err != nil {
				if ctx.Err() != nil || m.closed.Load() {
					return
				}
				changed() // lost notifications (ENOBUFS), or worse: look
				if !errors.Is(err, unix.ENOBUFS) {
					time.Sleep(10 * time.Millisecond)
				}
				continue
			}
			touched = tableTouched(msgs, table, touched, changed)
		}
	}()
	return nil
}

// tableTouched reads a batch of notifications: it calls changed at the end
// of each transaction that touched the inet table, and returns whether the
// transaction still open at the end of msgs did.
func tableTouched(msgs []mdnetlink.Message, table string, touched bool, changed func()) bool {
	for _, msg := range msgs {
		ev, ok := events.ParseNft(uint16(msg.Header.Type), msg.Data)
		switch {
		case !ok:
		case ev.Gen:
			if touched {
				changed()
			}
			touched = false
		case ev.Inet && ev.Table == table:
			touched = true
		}
	}
	return touched
}

package config

import (
	"errors"
	"fmt"
	"slices"
)

// Slot is a tenant's slot: the value the rules write into the conntrack
// mark of the tenant's intercepted connections (from 1; see MaxSlots), and
// the listener port that value leads to, listener.port + ID - 1, and the
// DNS listener port, listener.dns_port + ID - 1. The daemon keeps a
// tenant's slot across reloads, so a slot's ports are checked against
// every config it is used with (Listener.SlotOf).
type Slot struct {
	ID      uint32
	Port    uint16
	DNSPort uint16
}

// Why a slot has no listener port (see SlotOf).
var (
	// ErrPortPastMax: listener.port + ID - 1 (or dns_port + ID - 1) is
	// past 65535.
	ErrPortPastMax = errors.New("past 65535")
	// ErrPortIntercepted: the port is an intercept port, which the rules
	// would send back to a listener (or, for a DNS port, 53).
	ErrPortIntercepted = errors.New("in listener.intercept_ports")
	// ErrPortsOverlap: the slot's listener port reaches listener.dns_port,
	// or its DNS port reaches listener.port: the two ranges would meet.
	ErrPortsOverlap = errors.New("in the other range of listener ports")
)

// SlotOf returns slot id with its listener ports under l, or an error
// wrapping ErrPortPastMax, ErrPortIntercepted or ErrPortsOverlap when it
// has none. Each range of ports ends where the other begins, so a slot
// kept across reloads, however high, never takes another slot's port.
func (l *Listener) SlotOf(id uint32) (Slot, error) {
	port := int(l.Port) + int(id) - 1
	dns := int(l.DNSPort) + int(id) - 1
	switch {
	case port > 65535:
		return Slot{}, fmt.Errorf("its listener port would be %d, %w (listener.port %d)", port, ErrPortPastMax, l.Port)
	case slices.Contains(l.InterceptPorts, uint16(port)):
		return Slot{}, fmt.Errorf("its listener port %d is %w", port, ErrPortIntercepted)
	case dns > 65535:
		return Slot{}, fmt.Errorf("its DNS port would be %d, %w (listener.dns_port %d)", dns, ErrPortPastMax, l.DNSPort)
	case dns == 53 || slices.Contains(l.InterceptPorts, uint16(dns)):
		return Slot{}, fmt.Errorf("its DNS port %d is 53 or %w", dns, ErrPortIntercepted)
	case overlaps(int(l.Port), port, int(l.DNSPort)) || overlaps(int(l.DNSPort), dns, int(l.Port)):
		return Slot{}, fmt.Errorf("its listener port %d or DNS port %d is %w (listener.port %d, listener.dns_port %d)",
			port, dns, ErrPortsOverlap, l.Port, l.DNSPort)
	}
	return Slot{ID: id, Port: uint16(port), DNSPort: uint16(dns)}, nil
}

// overlaps reports whether the range from base to last reaches other, the
// first port of the other range.
func overlaps(base, last, other int) bool { return base <= other && other <= last }

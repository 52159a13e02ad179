package config

import (
	"errors"
	"fmt"
	"slices"
)

// Slot is a tenant's slot: the value the rules write into the conntrack
// mark of the tenant's intercepted connections (from 1; see MaxSlots), and
// the listener port that value leads to, listener.port + ID - 1. The daemon
// keeps a tenant's slot across reloads, so a slot's port is checked against
// every config it is used with (Listener.SlotOf).
type Slot struct {
	ID   uint32
	Port uint16
}

// Why a slot has no listener port (see SlotOf).
var (
	// ErrPortPastMax: listener.port + ID - 1 is past 65535.
	ErrPortPastMax = errors.New("past 65535")
	// ErrPortIntercepted: the port is an intercept port, which the rules
	// would send back to a listener.
	ErrPortIntercepted = errors.New("in listener.intercept_ports")
)

// SlotOf returns slot id with its listener port under l, or an error
// wrapping ErrPortPastMax or ErrPortIntercepted when it has none.
func (l *Listener) SlotOf(id uint32) (Slot, error) {
	port := int(l.Port) + int(id) - 1
	switch {
	case port > 65535:
		return Slot{}, fmt.Errorf("its listener port would be %d, %w (listener.port %d)", port, ErrPortPastMax, l.Port)
	case slices.Contains(l.InterceptPorts, uint16(port)):
		return Slot{}, fmt.Errorf("its listener port %d is %w", port, ErrPortIntercepted)
	}
	return Slot{ID: id, Port: uint16(port)}, nil
}

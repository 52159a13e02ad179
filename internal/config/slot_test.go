package config

import (
	"errors"
	"testing"
)

// TestSlotOf: a slot's port is listener.port + slot - 1, and a slot whose
// port would be past 65535 or an intercept port has none.
func TestSlotOf(t *testing.T) {
	l := Default().Listener
	l.Port, l.InterceptPorts = 65530, []uint16{80, 443, 65532}
	tests := []struct {
		id       uint32
		wantPort uint16
		wantErr  error
	}{
		{1, 65530, nil},
		{2, 65531, nil},
		{3, 0, ErrPortIntercepted},
		{6, 65535, nil},
		{7, 0, ErrPortPastMax},
		{4000, 0, ErrPortPastMax},
	}
	for _, tc := range tests {
		s, err := l.SlotOf(tc.id)
		if !errors.Is(err, tc.wantErr) || s.Port != tc.wantPort || (err == nil && s.ID != tc.id) {
			t.Errorf("SlotOf(%d) = %+v, %v; want port %d, %v", tc.id, s, err, tc.wantPort, tc.wantErr)
		}
	}
}

// TestSlotOfDNS: a slot's DNS port is listener.dns_port + slot - 1; a slot
// whose DNS port would be past 65535, 53 or an intercept port has none,
// and neither has one whose listener port reaches the first DNS port or
// whose DNS port reaches the first listener port (kept slots can go past
// the tenant count, so the ranges are bounded by each other's start).
func TestSlotOfDNS(t *testing.T) {
	tests := []struct {
		name      string
		port, dns uint16
		id        uint32
		wantDNS   uint16
		wantErr   error
	}{
		{"defaults", 15001, 20001, 1, 20001, nil},
		{"defaults, slot 4095", 15001, 20001, 4095, 24095, nil},
		{"DNS reaches the listener", 30000, 20001, 10000, 0, ErrPortsOverlap},
		{"DNS just below the listener", 30000, 20001, 9999, 29999, nil},
		{"listener reaches DNS", 15001, 20001, 5001, 0, ErrPortsOverlap},
		{"same base", 15001, 15001, 1, 0, ErrPortsOverlap},
		{"DNS past 65535", 15001, 65535, 2, 0, ErrPortPastMax},
		{"DNS port 53", 15001, 50, 4, 0, ErrPortIntercepted},
		{"DNS port an intercept port", 15001, 440, 4, 0, ErrPortIntercepted},
	}
	for _, tc := range tests {
		l := Default().Listener
		l.Port, l.DNSPort = tc.port, tc.dns
		s, err := l.SlotOf(tc.id)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: SlotOf(%d) = %+v, %v; want %v", tc.name, tc.id, s, err, tc.wantErr)
			}
			continue
		}
		if err != nil || s.DNSPort != tc.wantDNS {
			t.Errorf("%s: SlotOf(%d) = %+v, %v; want DNS port %d", tc.name, tc.id, s, err, tc.wantDNS)
		}
	}
}

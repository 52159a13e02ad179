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

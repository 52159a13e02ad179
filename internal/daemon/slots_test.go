package daemon

import (
	"reflect"
	"testing"
)

func TestSlotsStableAcrossReloads(t *testing.T) {
	st := newSlotTable(3)
	steps := []struct {
		name    string
		tenants []string
		want    map[string]uint32
		wantErr bool
	}{
		{"first load", []string{"a", "b", "c"}, map[string]uint32{"a": 1, "b": 2, "c": 3}, false},
		{"reorder keeps slots", []string{"c", "a", "b"}, map[string]uint32{"a": 1, "b": 2, "c": 3}, false},
		{"remove frees slot", []string{"a", "c"}, map[string]uint32{"a": 1, "c": 3}, false},
		{"new tenant takes lowest free", []string{"d", "a", "c"}, map[string]uint32{"a": 1, "c": 3, "d": 2}, false},
		{"over capacity fails", []string{"a", "c", "d", "e"}, nil, true},
		{"failed plan left table alone", []string{"a", "c", "d"}, map[string]uint32{"a": 1, "c": 3, "d": 2}, false},
	}
	for _, s := range steps {
		got, err := st.plan(s.tenants)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: err = %v", s.name, err)
		}
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: slots = %v, want %v", s.name, got, s.want)
		}
		st.commit(got)
	}
}

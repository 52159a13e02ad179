package dnsname

import "testing"

// TestDataType: data types are asked and served; 0, OPT and the meta and
// question-only types (128-255) never are.
func TestDataType(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  bool
	}{
		{"A", 1, true}, {"AAAA", 28, true}, {"TXT", 16, true}, {"HTTPS", 65, true}, {"CAA", 257, true},
		{"zero", 0, false}, {"OPT", 41, false}, {"TSIG", 250, false}, {"IXFR", 251, false},
		{"AXFR", 252, false}, {"ANY", 255, false}, {"first meta", 128, false},
	} {
		if got := DataType(tc.qtype); got != tc.want {
			t.Errorf("%s (%d): DataType = %v, want %v", tc.name, tc.qtype, got, tc.want)
		}
	}
}

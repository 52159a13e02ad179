package admission

import (
	"testing"
	"time"
)

func TestPacerTokenBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	type step struct {
		name    string
		advance time.Duration
		want    time.Duration
	}
	tests := []struct {
		name  string
		rate  int
		steps []step
	}{
		{"unlimited", 0, []step{{"first", 0, 0}, {"second", 0, 0}, {"third", 0, 0}}},
		{"burst of one second's worth, then spaced", 4, []step{
			{"1", 0, 0}, {"2", 0, 0}, {"3", 0, 0}, {"4", 0, 0},
			{"5 waits a quarter second", 0, 250 * time.Millisecond},
			{"6 queues behind it", 0, 500 * time.Millisecond},
			{"after 750ms the debt of 2 is paid and one token earned", 750 * time.Millisecond, 0},
			{"next waits", 0, 250 * time.Millisecond},
			{"a long pause refills only to the burst", time.Hour, 0},
			{"2 of burst", 0, 0}, {"3 of burst", 0, 0}, {"4 of burst", 0, 0},
			{"past the burst", 0, 250 * time.Millisecond},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pacer{}
			p.SetRate(tc.rate)
			for _, s := range tc.steps {
				now = now.Add(s.advance)
				if got := p.Take(now); got != s.want {
					t.Fatalf("%s: wait %v, want %v", s.name, got, s.want)
				}
			}
		})
	}
}

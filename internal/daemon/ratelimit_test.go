package daemon

import (
	"testing"
	"time"
)

func TestDenialLimiterFoldsWithoutLosingCounts(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newDenialLimiter(2, 10*time.Second)
	l.now = func() time.Time { return now }
	type step struct {
		name           string
		key            string
		advance        time.Duration
		wantOK         bool
		wantSuppressed int
	}
	steps := []step{
		{"first logged", "a", 0, true, 0},
		{"second logged", "a", time.Second, true, 0},
		{"third folded", "a", time.Second, false, 0},
		{"fourth folded", "a", time.Second, false, 0},
		{"other key independent", "b", 0, true, 0},
		{"fifth folded", "a", time.Second, false, 0},
		{"new window reports the three folded", "a", 7 * time.Second, true, 3},
		{"count reset after report", "a", time.Second, true, 0},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		ok, n := l.Allow(s.key)
		if ok != s.wantOK || n != s.wantSuppressed {
			t.Fatalf("%s: Allow = %v, %d; want %v, %d", s.name, ok, n, s.wantOK, s.wantSuppressed)
		}
	}
}

func TestDenialLimiterBoundsKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newDenialLimiter(1, time.Second)
	l.now = func() time.Time { return now }
	for i := range 10000 {
		if i%1000 == 0 {
			now = now.Add(2 * time.Second) // close every open window
		}
		l.Allow(string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := len(l.keys); n > maxDenialKeys+1 {
		t.Fatalf("limiter holds %d keys; closed windows are not swept", n)
	}
}

func TestDenialLimiterOverflowSharesOneWindow(t *testing.T) {
	l := newDenialLimiter(2, time.Hour) // no window closes during the test
	logged := 0
	for i := range maxDenialKeys + 500 {
		if ok, _ := l.Allow(time.Duration(i).String()); ok {
			logged++
		}
	}
	if n := len(l.keys); n > maxDenialKeys+1 {
		t.Fatalf("limiter holds %d keys, want at most %d", n, maxDenialKeys+1)
	}
	// Every distinct key below the bound is logged once; the 500 beyond it
	// share one window and so one burst.
	if want := maxDenialKeys + 2; logged != want {
		t.Fatalf("logged %d denials, want %d", logged, want)
	}
}

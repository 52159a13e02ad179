package logfold

import (
	"testing"
	"time"
)

func TestDenialLimiterFoldsWithoutLosingCounts(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(2, 10*time.Second)
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
		ok, n := l.Allow("web", s.key)
		if ok != s.wantOK || n != s.wantSuppressed {
			t.Fatalf("%s: Allow = %v, %d; want %v, %d", s.name, ok, n, s.wantOK, s.wantSuppressed)
		}
	}
}

func TestDenialLimiterBoundsKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(1, time.Second)
	l.now = func() time.Time { return now }
	for i := range 10000 {
		if i%1000 == 0 {
			now = now.Add(2 * time.Second) // close every open window
		}
		l.Allow("web", string(rune('a'+i%26))+time.Duration(i).String())
	}
	if n := len(l.tenants["web"].keys); n > maxDenialKeysPerTenant {
		t.Fatalf("limiter holds %d keys; closed windows are not swept", n)
	}
}

func TestDenialLimiterOverflowSharesOneWindow(t *testing.T) {
	l := New(2, time.Hour) // no window closes during the test
	logged := 0
	for i := range maxDenialKeysPerTenant + 500 {
		if ok, _ := l.Allow("web", time.Duration(i).String()); ok {
			logged++
		}
	}
	if n := len(l.tenants["web"].keys); n > maxDenialKeysPerTenant {
		t.Fatalf("limiter holds %d keys, want at most %d", n, maxDenialKeysPerTenant)
	}
	// Every distinct key below the bound is logged once; the 500 beyond it
	// share one window and so one burst.
	if want := maxDenialKeysPerTenant + 2; logged != want {
		t.Fatalf("logged %d denials, want %d", logged, want)
	}
}

// TestDenialLimiterTenantsAreIndependent: one tenant's flood of distinct
// denials (names it chooses) folds only its own lines; another tenant's
// denials are each logged as if the flood were not there.
func TestDenialLimiterTenantsAreIndependent(t *testing.T) {
	l := New(2, time.Hour) // no window closes during the test
	for i := range 4 * maxDenialKeysPerTenant {
		l.Allow("flood", "denied_domain\x00"+time.Duration(i).String()+".example")
	}
	for i := range 50 {
		key := "internal_address\x00" + time.Duration(i).String() + ".example"
		if ok, _ := l.Allow("quiet", key); !ok {
			t.Fatalf("quiet tenant's distinct denial %d was folded after another tenant's flood", i)
		}
	}
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.Allow("quiet", "same"); ok != want {
			t.Fatalf("quiet tenant's identical denial %d: logged %v, want %v (burst 2)", i, ok, want)
		}
	}
}

// TestDenialLimiterBoundsTotal: many flooding tenants together hold at
// most maxDenialKeys keys, and a tenant arriving after them still logs
// (a burst per window, in its own overflow window).
func TestDenialLimiterBoundsTotal(t *testing.T) {
	l := New(3, time.Hour)
	tenants := 2 * maxDenialKeys / maxDenialKeysPerTenant
	for n := range tenants {
		for i := range maxDenialKeysPerTenant + 10 {
			l.Allow(time.Duration(n).String(), time.Duration(i).String())
		}
	}
	if l.total > maxDenialKeys {
		t.Fatalf("limiter holds %d keys, want at most %d", l.total, maxDenialKeys)
	}
	held := 0
	for _, td := range l.tenants {
		held += len(td.keys)
	}
	if held != l.total {
		t.Fatalf("total %d, but the tenants hold %d keys", l.total, held)
	}
	logged := 0
	for i := range 10 {
		if ok, _ := l.Allow("late", time.Duration(i).String()); ok {
			logged++
		}
	}
	if logged != 3 {
		t.Fatalf("a tenant arriving after the bound logged %d of 10 distinct denials, want a burst of 3", logged)
	}
}

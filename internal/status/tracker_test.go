package status

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// TestLastMinute: the ring counts each outcome, sums the 60 seconds up to
// now, and forgets what is older, also across a wrap of the ring and a
// gap of more than a minute.
func TestLastMinute(t *testing.T) {
	type note struct {
		at      time.Duration // after t0
		outcome string
	}
	cases := []struct {
		name  string
		notes []note
		at    time.Duration
		want  Counts
	}{
		{"empty", nil, 0, Counts{}},
		{"each outcome", []note{{0, "allow"}, {0, "deny"}, {time.Second, "would_deny"}, {2 * time.Second, "error"}, {2 * time.Second, "allow"}},
			3 * time.Second, Counts{Connections: 5, Denied: 1, Reported: 1, Failed: 1}},
		{"the 60 seconds up to now", []note{{0, "deny"}, {59 * time.Second, "deny"}}, 59 * time.Second, Counts{Connections: 2, Denied: 2}},
		{"a minute later the first is gone", []note{{0, "deny"}, {59 * time.Second, "deny"}}, 60 * time.Second, Counts{Connections: 1, Denied: 1}},
		{"a reused bucket starts from zero", []note{{0, "deny"}, {0, "deny"}, {60 * time.Second, "allow"}}, 60 * time.Second, Counts{Connections: 1}},
		{"after a gap nothing is left", []note{{0, "allow"}, {30 * time.Second, "deny"}}, 5 * time.Minute, Counts{}},
		{"a note from the future is not counted yet", []note{{10 * time.Second, "allow"}}, 9 * time.Second, Counts{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr Tracker
			for _, n := range c.notes {
				tr.Note(t0.Add(n.at), n.outcome, "not_allowed", "x.example")
			}
			if got := tr.LastMinute(t0.Add(c.at)); got != c.want {
				t.Errorf("LastMinute = %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestTopDenied: denials and would-be denials are counted by name, allowed
// and failed connections are not; the most counted come first; the last
// decision and reason of a name are shown.
func TestTopDenied(t *testing.T) {
	var tr Tracker
	note := func(n int, outcome, reason, name string) {
		for range n {
			tr.Note(t0, outcome, reason, name)
		}
	}
	note(5, "deny", "not_allowed", "evil.example")
	note(3, "deny", "internal_address", "10.20.0.10")
	note(2, "would_deny", "not_allowed", "maybe.example")
	note(1, "would_deny", "denied_domain", "evil.example")
	note(9, "allow", "allowed", "good.example")
	note(9, "error", "upstream_refused", "down.example")
	got, since := tr.Top(t0.Add(time.Second), 10)
	if !since.Equal(t0) {
		t.Errorf("since %v, want %v", since, t0)
	}
	want := []string{"evil.example 6 would_deny denied_domain", "10.20.0.10 3 deny internal_address", "maybe.example 2 would_deny not_allowed"}
	if s := names(got); s != strings.Join(want, "; ") {
		t.Errorf("Top = %s\nwant  %s", s, strings.Join(want, "; "))
	}
	if top, _ := tr.Top(t0, 1); len(top) != 1 || top[0].Name != "evil.example" {
		t.Errorf("Top(1) = %v", top)
	}
}

func names(ns []Name) string {
	var out []string
	for _, n := range ns {
		s := fmt.Sprintf("%s %d %s %s", n.Name, n.Count, n.Decision, n.Reason)
		if n.Overcount > 0 {
			s += fmt.Sprintf(" (over %d)", n.Overcount)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// TestTopBounded: however many names a tenant is denied, a generation holds
// TopCapacity of them. A name denied more often than 1/TopCapacity of all
// denials stays listed (Space-Saving's guarantee); this one, listed from
// the start, keeps its exact count, while a scan of one-off names churns
// the least counted places, whose counts then say how much of them may be
// overcount.
func TestTopBounded(t *testing.T) {
	var tr Tracker
	for i := range 10000 {
		if i%10 == 0 {
			tr.Note(t0, "deny", "not_allowed", "heavy.example")
		}
		tr.Note(t0, "deny", "not_allowed", fmt.Sprintf("n%d.scan.example", i))
	}
	if n := len(tr.top[0].names); n != TopCapacity {
		t.Fatalf("generation holds %d names, want %d", n, TopCapacity)
	}
	top, _ := tr.Top(t0, TopCapacity)
	if top[0].Name != "heavy.example" || top[0].Count != 1000 || top[0].Overcount != 0 {
		t.Errorf("heaviest = %+v, want heavy.example counted exactly 1000 times", top[0])
	}
	if top[1].Overcount == 0 || top[1].Count-top[1].Overcount != 1 {
		t.Errorf("a scanned name = %+v, want a count of 1 plus its overcount", top[1])
	}
	var total uint64
	for _, n := range top {
		total += n.Count
		if n.Count < n.Overcount {
			t.Errorf("%+v: overcount above the count", n)
		}
	}
	if total != 11000 { // Space-Saving: the counts sum to what was noted
		t.Errorf("counts sum to %d, want 11000", total)
	}
	long := strings.Repeat("a", 1000)
	tr.Note(t0, "deny", "malformed", long)
	if top, _ := tr.Top(t0, TopCapacity); !hasName(top, long[:MaxNameLen]) {
		t.Errorf("a %d-byte name is not kept cut to %d bytes", len(long), MaxNameLen)
	}
}

func hasName(ns []Name, name string) bool {
	for _, n := range ns {
		if n.Name == name {
			return true
		}
	}
	return false
}

// TestTopWindow: the names shown are those of the last one to two
// TopWindows; counts of both generations add up; after two windows
// without a denial nothing is left.
func TestTopWindow(t *testing.T) {
	var tr Tracker
	tr.Note(t0, "deny", "not_allowed", "old.example")
	tr.Note(t0.Add(TopWindow+time.Minute), "deny", "not_allowed", "new.example")
	tr.Note(t0.Add(TopWindow+time.Minute), "deny", "not_allowed", "old.example")
	top, since := tr.Top(t0.Add(TopWindow+2*time.Minute), 10)
	if s := names(top); s != "old.example 2 deny not_allowed; new.example 1 deny not_allowed" || !since.Equal(t0) {
		t.Errorf("one window later: %s since %v", s, since)
	}
	top, since = tr.Top(t0.Add(2*TopWindow+time.Minute), 10)
	if s := names(top); s != "new.example 1 deny not_allowed; old.example 1 deny not_allowed" || !since.Equal(t0.Add(TopWindow)) {
		t.Errorf("two windows later: %s since %v, want the first generation gone", s, since)
	}
	if top, _ = tr.Top(t0.Add(4*TopWindow), 10); len(top) != 0 {
		t.Errorf("after two quiet windows: %s", names(top))
	}
}

// TestTrackerMemoryBound: the bound the package doc states.
func TestTrackerMemoryBound(t *testing.T) {
	worst := unsafe.Sizeof(Tracker{}) + 2*TopCapacity*(unsafe.Sizeof(Name{})+MaxNameLen)
	if worst > 13<<10 {
		t.Errorf("a tracker may hold %d bytes; the package doc says under 13 KiB", worst)
	}
	t.Logf("worst case %d bytes per tenant", worst)
}

// TestTrackerConcurrent: notes from many goroutines (run with -race) are
// all counted.
func TestTrackerConcurrent(t *testing.T) {
	var tr Tracker
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				tr.Note(t0, "deny", "not_allowed", fmt.Sprintf("n%d.example", (g*500+i)%20))
				tr.LastMinute(t0)
			}
		})
	}
	wg.Wait()
	if c := tr.LastMinute(t0); c.Connections != 4000 || c.Denied != 4000 {
		t.Errorf("LastMinute = %+v, want 4000 denials", c)
	}
}

func BenchmarkNote(b *testing.B) {
	var tr Tracker
	now := time.Now()
	names := []string{"a.example", "b.example", "c.example", "d.example"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tr.Note(now, "deny", "not_allowed", names[i%len(names)])
	}
}

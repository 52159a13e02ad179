package cgroup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "hybrid", in: "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
			"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
			"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", want: "/sys/fs/cgroup/unified"},
		{name: "unified with optional fields", in: "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate\n", want: "/sys/fs/cgroup"},
		{name: "escaped space", in: "40 30 0:37 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n", want: "/mnt/cg two"},
		{name: "subtree bind skipped", in: "41 30 0:37 /system.slice /mnt/x rw - cgroup2 cgroup2 rw\n40 30 0:37 / /mnt/y rw - cgroup2 none rw\n", want: "/mnt/y"},
		{name: "fstype is not cgroup2", in: "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup2 rw\n", wantErr: true},
		{name: "v1 only", in: "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n", wantErr: true},
		{name: "garbage", in: "- cgroup2\n\n - - - - - - - cgroup2\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseMountinfo = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
	f.Add("40 30 0:37 / /a\\134b rw - cgroup2 x rw\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseMountinfo(strings.NewReader(in))
		if err == nil && !filepath.IsAbs(got) {
			t.Fatalf("non-absolute mount %q", got)
		}
	})
}

func TestCleanLevel(t *testing.T) {
	tests := []struct {
		in, clean string
		level     int
	}{
		{"", "", 0},
		{"/", "", 0},
		{"a.slice", "a.slice", 1},
		{"/a.slice/b.slice/", "a.slice/b.slice", 2},
		{"a//b/./c", "a/b/c", 3},
		{"../../etc", "etc", 1},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := Clean(tc.in); got != tc.clean {
				t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.clean)
			}
			if got := Level(tc.in); got != tc.level {
				t.Errorf("Level(%q) = %d, want %d", tc.in, got, tc.level)
			}
		})
	}
}

func TestFindMountAndID(t *testing.T) {
	mnt, err := FindMount()
	if err != nil {
		t.Skipf("no cgroup2 here: %v", err)
	}
	var st os.FileInfo
	if st, err = os.Stat(filepath.Join(mnt, "cgroup.procs")); err != nil || st.IsDir() {
		t.Fatalf("%s does not look like a cgroup2 root: %v", mnt, err)
	}
	id, err := ID(mnt)
	if err != nil || id == 0 {
		t.Fatalf("ID(%s) = %d, %v", mnt, id, err)
	}
	if _, err := ID(filepath.Join(mnt, "cgroup.procs")); err == nil {
		t.Fatal("ID of a file succeeded")
	}
}

// next waits for the next event or fails after a generous timeout.
func next(t *testing.T, w *Watcher) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

// testWatcher runs the watcher scenario in root, which may be a plain
// directory (inotify behaves the same) or a real cgroup2 directory.
func testWatcher(t *testing.T, root string, uniqueIDs bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := os.Mkdir(filepath.Join(root, "present"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(root, "present"))
	w, err := Watch(ctx, root, []string{"present", "/later/deep/", "later/deep"})
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]Event{}
	for range 2 {
		ev := next(t, w)
		first[ev.Path] = ev
	}
	if ev := first["present"]; !ev.Present || ev.ID == 0 {
		t.Fatalf("initial present = %+v", ev)
	}
	if ev, ok := first["later/deep"]; !ok || ev.Present {
		t.Fatalf("initial later/deep = %+v (seen %v)", ev, ok)
	}
	deep := filepath.Join(root, "later", "deep")
	defer os.Remove(deep)
	defer os.Remove(filepath.Dir(deep))
	var lastID uint64
	for round := range 3 {
		start := time.Now()
		if err := os.MkdirAll(deep, 0o755); err != nil {
			t.Fatal(err)
		}
		ev := next(t, w)
		t.Logf("round %d: created seen after %v", round, time.Since(start))
		id, _ := ID(deep)
		if ev.Path != "later/deep" || !ev.Present || ev.ID != id || (uniqueIDs && ev.ID == lastID) {
			t.Fatalf("round %d: got %+v, want later/deep present with new id %d", round, ev, id)
		}
		if got := w.IDs()["later/deep"]; got != id {
			t.Fatalf("IDs()[later/deep] = %d, want %d", got, id)
		}
		lastID = id
		if err := os.Remove(deep); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, w); ev.Path != "later/deep" || ev.Present {
			t.Fatalf("round %d: after rmdir got %+v", round, ev)
		}
		if round == 1 { // also drop the parent: the watch must fall back to the root
			if err := os.Remove(filepath.Dir(deep)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	for range w.Events() {
	}
}

func TestWatcherPlainDir(t *testing.T) {
	testWatcher(t, t.TempDir(), false)
}

func TestWatcherCgroup2(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups (CI runs as root)")
	}
	mnt, err := FindMount()
	if err != nil {
		t.Skipf("no cgroup2 here: %v", err)
	}
	root, err := os.MkdirTemp(mnt, "egressfw-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []string{"later/deep", "later", "present", ""} {
			os.Remove(filepath.Join(root, d))
		}
		if _, err := os.Stat(root); err == nil {
			t.Errorf("test cgroup %s left behind", root)
		}
	})
	testWatcher(t, root, true) // kernfs never reuses ids
}

package cgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Event reports the state of one watched cgroup: Present with its current ID,
// or absent (ID 0). A cgroup that is removed and re-created produces an event
// with the new ID.
type Event struct {
	Path    string // as configured, cleaned (see Clean)
	ID      uint64
	Present bool
}

// watchMask selects directory entries appearing and disappearing, plus the
// watched directory itself going away.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_ONLYDIR

// Watcher follows a fixed set of cgroup paths with inotify. For each path it
// watches the parent directory, or the deepest existing ancestor while the
// parent does not exist yet, so a cgroup created later is picked up as soon
// as its mkdir returns. Create it with Watch.
type Watcher struct {
	root   string
	paths  []string
	events chan Event
	file   *os.File // owns fd; closing it ends run's Read
	fd     int      // never call file.Fd(): it would make the descriptor blocking

	mu    sync.Mutex
	ids   map[string]uint64 // last reported state; absent = not present
	wds   map[int]string    // watch descriptor -> watched dir (relative)
	byDir map[string]int    // watched dir (relative) -> watch descriptor
}

// Watch starts watching the cgroups paths (relative to the cgroup2 mount
// root) until ctx is done, when the Events channel is closed. Paths that do
// not exist yet are watched for, not an error. The first len(paths) events
// (fewer if paths repeat) report the initial state of every path.
func Watch(ctx context.Context, root string, paths []string) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch cgroups: inotify init: %w", err)
	}
	w := &Watcher{
		root:   root,
		file:   os.NewFile(uintptr(fd), "inotify"),
		fd:     fd,
		ids:    map[string]uint64{},
		wds:    map[int]string{},
		byDir:  map[string]int{},
		events: make(chan Event, 64),
	}
	seen := map[string]bool{}
	for _, p := range paths {
		c := Clean(p)
		if c == "" {
			w.file.Close()
			return nil, fmt.Errorf("watch cgroups: %q is the cgroup root", p)
		}
		if !seen[c] {
			seen[c] = true
			w.paths = append(w.paths, c)
		}
	}
	initial := make([]Event, 0, len(w.paths))
	for _, p := range w.paths {
		ev, err := w.check(p)
		if err != nil {
			w.file.Close()
			return nil, fmt.Errorf("watch cgroups: %w", err)
		}
		w.changed(ev)
		initial = append(initial, ev)
	}
	go w.run(ctx, initial)
	return w, nil
}

// Events delivers state changes. It is closed after the context passed to
// Watch is done.
func (w *Watcher) Events() <-chan Event { return w.events }

// IDs returns a snapshot of the ids of the watched cgroups that exist.
func (w *Watcher) IDs() map[string]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]uint64, len(w.ids))
	for p, id := range w.ids {
		out[p] = id
	}
	return out
}

func (w *Watcher) run(ctx context.Context, initial []Event) {
	defer close(w.events)
	stop := context.AfterFunc(ctx, func() { w.file.Close() })
	defer stop()
	for _, ev := range initial {
		if !w.send(ctx, ev) {
			return
		}
	}
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			return // closed by ctx, or the descriptor failed: nothing to watch with
		}
		for _, p := range w.affected(buf[:n]) {
			ev, err := w.check(p)
			if err != nil || !w.changed(ev) {
				continue
			}
			if !w.send(ctx, ev) {
				return
			}
		}
	}
}

func (w *Watcher) send(ctx context.Context, ev Event) bool {
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// affected decodes a buffer of inotify events and returns the configured
// paths that a change in those directories can have created or removed.
func (w *Watcher) affected(buf []byte) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	hit := map[string]bool{}
	for len(buf) >= unix.SizeofInotifyEvent {
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(raw.Len)
		if end > len(buf) {
			break
		}
		name := string(bytes.TrimRight(buf[unix.SizeofInotifyEvent:end], "\x00"))
		buf = buf[end:]
		dir, ok := w.wds[int(raw.Wd)]
		if !ok {
			continue
		}
		if raw.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF) != 0 {
			name = "" // everything below dir is affected
		}
		changed := joinRel(dir, name)
		if raw.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
			// cgroupfs does not always report IN_DELETE_SELF, so a removal
			// seen from the parent also retires the watches below it; a
			// re-created directory is a new inode and needs a new watch.
			w.forgetLocked(changed)
		}
		for _, p := range w.paths {
			if under(p, changed) {
				hit[p] = true
			}
		}
	}
	out := make([]string, 0, len(hit))
	for _, p := range w.paths {
		if hit[p] {
			out = append(out, p)
		}
	}
	return out
}

// forgetLocked drops the watches on dir and below it. w.mu must be held.
func (w *Watcher) forgetLocked(dir string) {
	for d, wd := range w.byDir {
		if under(d, dir) && d != "" {
			delete(w.byDir, d)
			delete(w.wds, wd)
			_, _ = unix.InotifyRmWatch(w.fd, uint32(wd)) // may already be gone
		}
	}
}

// changed records ev as the current state of its path and reports whether it
// differs from the state reported before.
func (w *Watcher) changed(ev Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	old, had := w.ids[ev.Path]
	if had == ev.Present && old == ev.ID {
		return false
	}
	if ev.Present {
		w.ids[ev.Path] = ev.ID
	} else {
		delete(w.ids, ev.Path)
	}
	return true
}

// check (re)establishes the watch that will see p appear or disappear and
// then reads p's id. Watching before reading closes the race with a mkdir
// that happens in between.
func (w *Watcher) check(p string) (Event, error) {
	for try := 0; ; try++ {
		dir := deepestExistingParent(w.root, p)
		err := w.addWatch(dir)
		if err == nil {
			break
		}
		// Removed between the stat and the watch: look again, a few times.
		retry := errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
		if !retry || try == 8 {
			return Event{}, err
		}
	}
	id, err := ID(filepath.Join(w.root, p))
	if err != nil {
		return Event{Path: p}, nil
	}
	return Event{Path: p, ID: id, Present: true}, nil
}

func (w *Watcher) addWatch(dir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.byDir[dir]; ok {
		return nil
	}
	wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(w.root, dir), watchMask)
	if err != nil {
		return fmt.Errorf("inotify watch %s: %w", filepath.Join(w.root, dir), err)
	}
	if old, ok := w.wds[wd]; ok { // same inode under a new name: forget the old name
		delete(w.byDir, old)
	}
	w.wds[wd] = dir
	w.byDir[dir] = wd
	return nil
}

// deepestExistingParent returns the parent of p if it exists, else its
// deepest existing ancestor ("" for the root).
func deepestExistingParent(root, p string) string {
	dir := parentRel(p)
	for dir != "" {
		if st, err := os.Stat(filepath.Join(root, dir)); err == nil && st.IsDir() {
			return dir
		}
		dir = parentRel(dir)
	}
	return ""
}

func parentRel(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinRel(dir, name string) string {
	switch {
	case dir == "":
		return name
	case name == "":
		return dir
	}
	return dir + "/" + name
}

// under reports whether p is changed or at or below the changed path.
func under(p, changed string) bool {
	return changed == "" || p == changed || strings.HasPrefix(p, changed+"/")
}

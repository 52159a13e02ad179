package subid

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// settle is how long a file must stay quiet after a change before it is
// reported: a write in place comes as several events.
const settle = 50 * time.Millisecond

// dirMask: a named file written, replaced by rename (shadow-utils writes
// "subuid+" and renames it over "subuid"), created or removed.
const dirMask = unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_ONLYDIR

// Watch reports changes to the files at paths until ctx is done. It
// watches their directories, not the files, so a file replaced by rename,
// removed or created later is seen too. Each change is reported once its
// file has been quiet for 50ms; changes while a report is pending are folded
// into it. The channel is closed when ctx is done or inotify fails.
func Watch(ctx context.Context, paths ...string) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch %v: inotify init: %w", paths, err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: reads use the poller
	names := map[int]map[string]bool{}      // watch descriptor -> base names
	for _, p := range paths {
		dir := filepath.Dir(p)
		wd, err := unix.InotifyAddWatch(fd, dir, dirMask)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("watch %s: %w", dir, err)
		}
		if names[wd] == nil {
			names[wd] = map[string]bool{}
		}
		names[wd][filepath.Base(p)] = true
	}
	raw := make(chan struct{}, 1)
	go func() {
		defer close(raw)
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := f.Read(buf)
			if err != nil {
				return // closed at ctx's end, or inotify failed
			}
			if touches(buf[:n], names) {
				select {
				case raw <- struct{}{}:
				default:
				}
			}
		}
	}()
	out := make(chan struct{}, 1)
	go debounce(ctx, f, raw, out)
	return out, nil
}

// debounce turns bursts on raw into one send on out, settle after the
// last, and closes out (and f) when ctx is done or raw is closed.
func debounce(ctx context.Context, f *os.File, raw <-chan struct{}, out chan<- struct{}) {
	defer close(out)
	defer f.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-raw:
			if !ok {
				return
			}
			timer.Reset(settle)
		case <-timer.C:
			select {
			case out <- struct{}{}:
			default: // one report is pending already
			}
		}
	}
}

// touches reports whether a buffer of inotify events names one of the
// watched files.
func touches(buf []byte, names map[int]map[string]bool) bool {
	hit := false
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			break
		}
		name := bytes.TrimRight(buf[unix.SizeofInotifyEvent:end], "\x00")
		buf = buf[end:]
		if names[int(ev.Wd)][string(name)] {
			hit = true
		}
	}
	return hit
}

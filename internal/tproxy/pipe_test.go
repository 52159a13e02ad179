package tproxy

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestPutPipe checks that only empty pipes return to the free list, that the
// list is bounded, and that every other pipe is closed.
func TestPutPipe(t *testing.T) {
	tests := []struct {
		name       string
		preFill    int  // pipes put on the free list first
		empty      bool // the pipe under test is empty
		wantPooled bool
	}{
		{"empty pipe is pooled", 0, true, true},
		{"pipe holding bytes is closed", 0, false, false},
		{"full free list closes an empty pipe", maxFreePipes, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			drainFreePipes(t)
			t.Cleanup(func() { drainFreePipes(t) })
			var pre []pipe
			for range tc.preFill {
				p, err := getPipe()
				if err != nil {
					t.Fatal(err)
				}
				pre = append(pre, p)
			}
			for _, p := range pre {
				putPipe(p, true)
			}
			var fds [2]int
			if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			p := pipe{fds[0], fds[1]}
			putPipe(p, tc.empty)
			pipes.mu.Lock()
			pooled := len(pipes.free) > 0 && pipes.free[len(pipes.free)-1] == p
			n := len(pipes.free)
			pipes.mu.Unlock()
			if pooled != tc.wantPooled || n > maxFreePipes {
				t.Fatalf("pooled = %v with %d on the list, want %v and at most %d", pooled, n, tc.wantPooled, maxFreePipes)
			}
			_, err := unix.FcntlInt(uintptr(p.w), unix.F_GETFD, 0)
			if open := err == nil; open != tc.wantPooled {
				t.Fatalf("pipe open = %v (%v), want %v", open, err, tc.wantPooled)
			}
		})
	}
}

// drainFreePipes closes every pipe on the free list.
func drainFreePipes(t *testing.T) {
	t.Helper()
	pipes.mu.Lock()
	defer pipes.mu.Unlock()
	for _, p := range pipes.free {
		if err := unix.Close(p.r); err != nil {
			t.Error(err)
		}
		if err := unix.Close(p.w); err != nil {
			t.Error(err)
		}
	}
	pipes.free = pipes.free[:0]
}

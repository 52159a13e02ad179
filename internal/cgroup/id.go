package cgroup

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ID returns the cgroup id of the cgroup directory dir (an absolute path
// inside the cgroup2 mount). The id is the directory's inode number, which
// is what the kernel compares in `socket cgroupv2 level N`.
func ID(dir string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("cgroup id of %s: not a directory", dir)
	}
	return st.Ino, nil
}

// Level is the depth of a cgroup path relative to the cgroup2 root: the
// number of its components, which is the level `socket cgroupv2 level N`
// must use to compare a socket's ancestor with it. The root has level 0.
func Level(rel string) int {
	rel = Clean(rel)
	if rel == "" {
		return 0
	}
	return strings.Count(rel, "/") + 1
}

// Clean normalises a path relative to the cgroup2 root: no leading or
// trailing slashes, no empty or "." components; ".." is resolved lexically
// and cannot climb above the root. It returns "" for the root.
func Clean(rel string) string {
	return strings.TrimPrefix(path.Clean("/"+rel), "/")
}

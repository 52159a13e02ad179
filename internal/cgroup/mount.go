// Package cgroup finds the cgroup v2 hierarchy, resolves cgroup paths to the
// 64-bit ids the kernel uses for `socket cgroupv2` matching, and watches
// configured cgroups appear and disappear so that their ids can be kept
// current in the firewall without reloading it.
//
// Paths handed to this package are relative to the cgroup2 mount point, for
// example "system.slice/egressfw-webhooks.service". The id of a cgroup is the
// inode number of its directory in cgroupfs (kernfs node id); a cgroup that
// is removed and re-created gets a new id.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
)

// ErrNoCgroup2 is returned by FindMount when no cgroup2 file system is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 file system mounted")

// FindMount returns the mount point of the cgroup v2 hierarchy as seen by
// this process, read from /proc/self/mountinfo. On hybrid hosts this is not
// /sys/fs/cgroup but e.g. /sys/fs/cgroup/unified.
func FindMount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	mnt, err := parseMountinfo(f)
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	return mnt, nil
}

// parseMountinfo returns the mount point of the first cgroup2 entry that
// shows the root of its hierarchy. Lines look like
//
//	40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
//
// with a variable number of optional fields before the "-" separator.
func parseMountinfo(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		if fields[3] != "/" {
			continue // a bind mount of a sub-tree (e.g. inside a container)
		}
		mnt := unescapeOctal(fields[4])
		if !path.IsAbs(mnt) {
			continue
		}
		return path.Clean(mnt), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return "", ErrNoCgroup2
}

// unescapeOctal undoes the \NNN escaping the kernel applies to spaces, tabs,
// newlines and backslashes in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

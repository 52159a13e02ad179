package netnstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// RemoveStale deletes what runs that crashed or were killed left behind
// (t.Cleanup does not run then): network namespaces (after killing their
// processes), cgroups directly under the cgroup2 root and directories in
// os.TempDir whose name starts with prefix followed by the pid of a process
// that is gone (see UniqueName). Call it from TestMain, as root.
func RemoveStale(prefix string) {
	if ents, err := os.ReadDir(RunDir); err == nil {
		for _, e := range ents {
			if stale(prefix, e.Name()) {
				if out, err := exec.Command("ip", "netns", "pids", e.Name()).Output(); err == nil {
					killPids(strings.Fields(string(out)))
				}
				exec.Command("ip", "netns", "del", e.Name()).Run()
			}
		}
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if stale(prefix, e.Name()) {
				os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
	root, err := CgroupRoot()
	if err != nil {
		return
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if e.IsDir() && stale(prefix, e.Name()) {
			RemoveCgroupTree(filepath.Join(root, e.Name()))
		}
	}
}

// stale reports whether name is prefix and a pid (then "-" or "." and
// more, or nothing), and that process is gone.
func stale(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	end := strings.IndexAny(rest, "-.")
	if end < 0 {
		end = len(rest)
	}
	pid, err := strconv.Atoi(rest[:end])
	if err != nil || pid <= 0 {
		return false
	}
	return pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
}

func killPids(pids []string) {
	for _, f := range pids {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

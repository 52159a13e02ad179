package netnstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CgroupRoot finds the cgroup2 mount in /proc/self/mountinfo (on a hybrid
// host it is not /sys/fs/cgroup).
func CgroupRoot() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return cgroup2Mount(f)
}

// cgroup2Mount returns the mount point of the first cgroup2 mount of the
// whole hierarchy (its root is "/") in a mountinfo file.
func cgroup2Mount(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 && f[3] == "/" {
			return f[4], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return "", errors.New("no cgroup2 mount in /proc/self/mountinfo")
}

// NewCgroup creates the cgroup name directly under the cgroup2 root, and
// the leaves below it, and returns its directory. When the test ends the
// tree is removed, killing what is left inside (RemoveCgroupTree).
func NewCgroup(t testing.TB, name string, leaves ...string) string {
	t.Helper()
	NeedRoot(t)
	root, err := CgroupRoot()
	if err != nil {
		t.Fatalf("find cgroup2: %v", err)
	}
	dir := filepath.Join(root, name)
	for _, leaf := range append([]string{""}, leaves...) {
		if err := os.Mkdir(filepath.Join(dir, leaf), 0o755); err != nil {
			t.Fatalf("create cgroup: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := RemoveCgroupTree(dir); err != nil {
			t.Errorf("remove test cgroups: %v", err)
		}
	})
	return dir
}

// RemoveCgroupTree kills every process in the cgroup tree at dir and
// removes its directories, children first. A missing dir is not an error.
func RemoveCgroupTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, RemoveCgroupTree(filepath.Join(dir, e.Name())))
		}
	}
	errs = append(errs, KillCgroup(dir))
	deadline := time.Now().Add(5 * time.Second)
	for { // a just-exited process may still be counted for a moment
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", dir, err))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// KillCgroup SIGKILLs every process of the cgroup (cgroup.kill where the
// kernel has it, else one by one) and waits until it is empty.
func KillCgroup(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		for _, pid := range cgroupPids(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(cgroupPids(dir)) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still has processes %v", dir, cgroupPids(dir))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func cgroupPids(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// IntoCgroup makes cmd start in the cgroup at dir, placed there at clone
// time (CLONE_INTO_CGROUP), so not one packet leaves outside it. Call the
// returned function once cmd has started.
func IntoCgroup(cmd *exec.Cmd, dir string) (closeFD func(), err error) {
	fd, err := syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	return func() { syscall.Close(fd) }, nil
}

package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// removeCgroupTree kills every process in the cgroup tree at dir and
// removes its directories, children first.
func removeCgroupTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, removeCgroupTree(filepath.Join(dir, e.Name())))
		}
	}
	errs = append(errs, killCgroup(dir))
	deadline := time.Now().Add(5 * time.Second)
	for {
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

// killCgroup SIGKILLs every process of the cgroup (cgroup.kill where the
// kernel has it, else one by one) and waits until it is empty.
func killCgroup(dir string) error {
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
		var p int
		fmt.Sscan(f, &p)
		pids = append(pids, p)
	}
	return pids
}

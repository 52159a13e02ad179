package netns

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// prefix starts the name of every namespace and cgroup this suite makes;
// the pid after it tells a leftover of a crashed run from a live one.
const prefix = "egfw-e2e-"

// Paths of the binaries under test, set by TestMain for root runs.
var (
	egressfwBin string
	testsrvBin  string
	binDir      string
	setupErr    error
)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			removeLeftovers()
			var err error
			if binDir, err = os.MkdirTemp("", fmt.Sprintf("%s%d-bin-", prefix, os.Getpid())); err != nil {
				setupErr = err
			} else {
				defer os.RemoveAll(binDir)
				setupErr = buildBinaries()
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needRoot skips as non-root and fails when the binaries did not build.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests need root to create network namespaces and cgroups (CI runs as root)")
	}
	if setupErr != nil {
		t.Fatalf("setting up the suite: %v", setupErr)
	}
}

// moduleRoot is the repository root, two levels above this package.
func moduleRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// buildBinaries builds testsrv, and egressfw unless EGRESSFW_BIN names one,
// into binDir (world-readable, so uid tenants can run them).
func buildBinaries() error {
	if err := os.Chmod(binDir, 0o755); err != nil {
		return err
	}
	root := moduleRoot()
	testsrvBin = filepath.Join(binDir, "testsrv")
	targets := [][2]string{{testsrvBin, "./test/netns/testsrv"}}
	if p := os.Getenv("EGRESSFW_BIN"); p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		egressfwBin = p
	} else {
		egressfwBin = filepath.Join(binDir, "egressfw")
		targets = append(targets, [2]string{egressfwBin, "./cmd/egressfw"})
	}
	for _, tg := range targets {
		cmd := exec.Command("go", "build", "-o", tg[0], tg[1])
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", tg[1], err, out)
		}
	}
	if _, err := os.Stat(egressfwBin); err != nil {
		return fmt.Errorf("egressfw binary: %w", err)
	}
	return nil
}

// removeLeftovers deletes namespaces and cgroups of earlier runs whose
// process is gone (a crash or a kill -9 skips t.Cleanup).
func removeLeftovers() {
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if stale(e.Name()) {
				if out, err := exec.Command("ip", "netns", "pids", e.Name()).Output(); err == nil {
					for _, f := range strings.Fields(string(out)) {
						if pid, err := strconv.Atoi(f); err == nil {
							syscall.Kill(pid, syscall.SIGKILL)
						}
					}
				}
				exec.Command("ip", "netns", "del", e.Name()).Run()
			}
		}
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if stale(e.Name()) {
				os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
	root, err := cgroupRoot()
	if err != nil {
		return
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if e.IsDir() && stale(e.Name()) {
			removeCgroupTree(filepath.Join(root, e.Name()))
		}
	}
}

// stale reports whether name is ours and its creating process is gone.
func stale(name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	pidStr, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return false
	}
	return pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
}

// cgroupRoot finds the cgroup2 mount in /proc/self/mountinfo.
func cgroupRoot() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) >= 5 {
				return f[4], nil
			}
		}
	}
	return "", fmt.Errorf("no cgroup2 mount in /proc/self/mountinfo")
}

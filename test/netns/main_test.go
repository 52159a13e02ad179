package netns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// prefix starts the name of every namespace, cgroup and temporary
// directory this suite makes; the pid after it tells a leftover of a
// crashed run from a live one (netnstest.RemoveStale).
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
			netnstest.RemoveStale(prefix)
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
func needRoot(t testing.TB) {
	t.Helper()
	netnstest.NeedRoot(t)
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

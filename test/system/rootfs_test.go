//go:build system

package system

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const (
	cacheDir = "/var/cache/egressfw-test"
	suite    = "bookworm"
	// rootfsRecipe changes the cache key when the way the rootfs is made
	// changes; bump it with the steps in buildRootfs.
	rootfsRecipe = "minbase-v1"
)

// rootfsPackages are installed by debootstrap: systemd to boot, procps for
// the package's Depends (the container has no network for apt), curl for
// the tenant, nftables and iproute2 to set up and inspect from the test.
var rootfsPackages = []string{"systemd", "systemd-sysv", "dbus", "procps", "curl", "nftables", "iproute2"}

// cachedRootfs returns a tarball of a Debian 12 root filesystem, building it
// with debootstrap on the first run. Runs share it under cacheDir, keyed by
// a hash of the suite, mirror, packages and recipe.
func cachedRootfs(t *testing.T) string {
	t.Helper()
	mirror, err := debianMirror()
	if err != nil {
		t.Fatalf("finding the Debian mirror apt uses: %v", err)
	}
	sum := sha256.Sum256([]byte(strings.Join(append([]string{suite, mirror, rootfsRecipe}, rootfsPackages...), "\n")))
	tarball := filepath.Join(cacheDir, "rootfs-"+suite+"-"+hex.EncodeToString(sum[:8])+".tar")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Fatalf("creating the rootfs cache: %v", err)
	}
	// One builder at a time; others wait and then find the tarball.
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("opening the cache lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("locking the rootfs cache: %v", err)
	}
	if _, err := os.Stat(tarball); err == nil {
		t.Logf("rootfs: cached %s", tarball)
		return tarball
	}
	t.Logf("rootfs: debootstrap %s from %s (first run only; a few minutes)", suite, mirror)
	if err := buildRootfs(t, mirror, tarball); err != nil {
		t.Fatalf("building the rootfs: %v", err)
	}
	// Older recipes' tarballs are dead weight now.
	old, _ := filepath.Glob(filepath.Join(cacheDir, "rootfs-*.tar"))
	for _, f := range old {
		if f != tarball {
			os.Remove(f)
		}
	}
	return tarball
}

// buildRootfs debootstraps into a temporary directory and packs it into
// tarball atomically.
func buildRootfs(t *testing.T, mirror, tarball string) error {
	dir, err := os.MkdirTemp("/var/tmp", "egressfw-rootfs-")
	if err != nil {
		return fmt.Errorf("creating the build directory: %w", err)
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "root")
	if out, err := exec.Command("debootstrap", "--variant=minbase",
		"--include="+strings.Join(rootfsPackages, ","), suite, root, mirror).CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap: %w\n%s", err, tail(out, 30))
	}
	// Boot fast and quietly: no package lists or caches, no getty, a
	// per-boot machine id.
	setup := `set -e
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
: > /etc/machine-id
echo egressfw-systest > /etc/hostname
systemctl mask console-getty.service getty@.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer 2>/dev/null || true`
	if out, err := exec.Command("chroot", root, "/bin/sh", "-c", setup).CombinedOutput(); err != nil {
		return fmt.Errorf("configuring the rootfs: %w\n%s", err, out)
	}
	tmp := tarball + ".tmp"
	if out, err := exec.Command("tar", "-C", root, "--numeric-owner", "--xattrs", "-cf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("packing the rootfs: %w\n%s", err, out)
	}
	return os.Rename(tmp, tarball)
}

// debianMirror returns the first Debian archive URI apt on this machine uses
// for the suite, from /etc/apt/sources.list and sources.list.d (one-line and
// deb822 formats).
func debianMirror() (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	for _, f := range files {
		if uri := mirrorIn(f); uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no 'deb' source for %s in /etc/apt/sources.list*", suite)
}

func mirrorIn(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var uris, suites []string
	isDeb := false
	flush := func() string {
		defer func() { uris, suites, isDeb = nil, nil, false }()
		if isDeb && contains(suites, suite) && len(uris) > 0 && !strings.Contains(uris[0], "security") {
			return uris[0]
		}
		return ""
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		switch {
		case line == "":
			if u := flush(); u != "" {
				return u
			}
		case strings.HasPrefix(line, "#"):
		case fields[0] == "deb" && strings.HasSuffix(path, ".list"):
			// deb [options] URI SUITE COMPONENTS...
			rest := fields[1:]
			if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
				for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
					rest = rest[1:]
				}
				rest = rest[1:]
			}
			if len(rest) >= 2 && rest[1] == suite {
				return rest[0]
			}
		case strings.EqualFold(fields[0], "Types:"):
			isDeb = contains(fields[1:], "deb")
		case strings.EqualFold(fields[0], "URIs:"):
			uris = fields[1:]
		case strings.EqualFold(fields[0], "Suites:"):
			suites = fields[1:]
		}
	}
	return flush()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tail returns the last n lines of out, for error messages.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

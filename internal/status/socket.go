package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxReport bounds what Fetch reads: a report of thousands of tenants is a
// few MiB.
const maxReport = 64 << 20

// writeTimeout bounds how long Serve waits for a client to read.
const writeTimeout = 5 * time.Second

// Listen opens the status socket at path, mode 0600. A missing parent
// directory is created 0700. A socket left at path by a process that is
// gone is replaced; one that answers (another egressfw) and any other kind
// of file are errors.
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// bind made it with the umask's mode: the peer check in Serve holds
	// until the mode is right too.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	return ln, nil
}

// removeStale removes a socket at path that no process listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("exists and is not a socket (%s)", fi.Mode().Type())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return errors.New("another process answers on it (is egressfw already running?)")
	}
	return os.Remove(path)
}

// Serve answers every connection on ln with report() as one JSON object,
// until ln is closed. A peer whose uid is neither root nor the daemon's own
// is answered with Report.Error only.
func Serve(ln *net.UnixListener, report func() Report, log *slog.Logger) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("status socket stopped", "err", err)
			}
			return
		}
		go answer(c, report, log)
	}
}

// answer writes one report, or the refusal, and closes c.
func answer(c *net.UnixConn, report func() Report, log *slog.Logger) {
	defer c.Close()
	var r Report
	uid, err := peerUID(c)
	switch {
	case err != nil:
		r.Error = fmt.Sprintf("status: cannot tell who is asking: %v", err)
	case uid != 0 && uid != uint32(os.Geteuid()):
		r.Error = fmt.Sprintf("status: permission denied: uid %d is not root", uid)
		log.Warn("status socket: refused a peer that is not root", "uid", uid)
	default:
		r = report()
	}
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := json.NewEncoder(c).Encode(r); err != nil {
		log.Debug("status socket: write", "err", err)
	}
}

// peerUID is the uid of the process that connected (SO_PEERCRED: taken at
// connect, the kernel's word, not the client's).
func peerUID(c *net.UnixConn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return cred.Uid, nil
}

// Fetch asks the daemon at path for its report: the raw JSON, and the
// report decoded. A refusal (Report.Error) is an error.
func Fetch(ctx context.Context, path string) ([]byte, Report, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.EACCES) {
			return nil, Report{}, fmt.Errorf("connect to %s: %w (the status socket is root's)", path, err)
		}
		return nil, Report{}, fmt.Errorf("connect to %s: %w (is egressfw running?)", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	raw, err := io.ReadAll(io.LimitReader(c, maxReport))
	if err != nil {
		return nil, Report{}, fmt.Errorf("read %s: %w", path, err)
	}
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return raw, Report{}, fmt.Errorf("read %s: not a status report: %w", path, err)
	}
	if r.Error != "" {
		return raw, r, errors.New(r.Error)
	}
	return raw, r, nil
}

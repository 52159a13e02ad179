package suggest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Unit is the systemd unit whose journal holds egressfw's log.
const Unit = "egressfw.service"

// ErrNoJournalctl is returned when journalctl is not installed.
var ErrNoJournalctl = errors.New("journalctl not found: read a saved log with --from FILE (or --from - for standard input)")

// JournalArgs are the journalctl arguments that print the unit's entries
// as JSON, logged at or after since (zero: all). Only MESSAGE is asked for
// (journalctl adds the timestamps), --all keeps a long MESSAGE from being
// elided to null.
func JournalArgs(since time.Time) []string {
	args := []string{"--unit=" + Unit, "--output=json", "--output-fields=MESSAGE", "--all", "--no-pager", "--quiet"}
	if !since.IsZero() {
		args = append(args, "--since=@"+strconv.FormatInt(since.Unix(), 10))
	}
	return args
}

// ReadJournal runs journalctl (found in PATH) and reads its output like
// Read. Reading the journal of a system service needs root or membership in
// the systemd-journal (or adm) group; without it journalctl prints nothing
// and exits 0, which the caller sees as no connection lines.
func ReadJournal(f Filter, l *Log) (Stats, error) {
	path, err := exec.LookPath("journalctl")
	if err != nil {
		return Stats{}, ErrNoJournalctl
	}
	cmd := exec.Command(path, JournalArgs(f.Since)...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Stats{}, fmt.Errorf("run journalctl: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return Stats{}, fmt.Errorf("run journalctl: %w", err)
	}
	st, rerr := Read(out, f, l)
	if rerr != nil {
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	if rerr != nil {
		return st, rerr
	}
	if werr != nil {
		return st, fmt.Errorf("journalctl %s: %w: %s", strings.Join(cmd.Args[1:], " "), werr, strings.TrimSpace(stderr.String()))
	}
	return st, nil
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (lw *limitedWriter) Write(p []byte) (int, error) {
	if lw.n > 0 {
		k := min(len(p), lw.n)
		lw.n -= k
		if _, err := lw.w.Write(p[:k]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

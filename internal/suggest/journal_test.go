package suggest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeJournalctl puts a journalctl script first in PATH (and alone: PATH
// is only its directory) that records its arguments and runs body.
func fakeJournalctl(t *testing.T, body string) (argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > " + argsFile + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	return argsFile
}

// TestReadJournal: by default suggest runs journalctl for egressfw's unit
// as JSON (from --since on) and reads MESSAGE; the recorded entries hold
// one MESSAGE as a byte array, as journald writes text that is not UTF-8.
func TestReadJournal(t *testing.T) {
	data, err := filepath.Abs("testdata/journal.json")
	if err != nil {
		t.Fatal(err)
	}
	argsFile := fakeJournalctl(t, "/bin/cat "+data)
	since := time.Unix(1796032830, 0) // 30 s after the first entry
	l := NewLog()
	st, err := ReadJournal(Filter{Since: since}, l)
	if err != nil {
		t.Fatal(err)
	}
	// The fake ignores --since; suggest applies it too, by the line's own
	// time (news.bbc.co.uk was logged at 10:00, journald stored it at 10:03).
	if want := (Stats{Lines: 4, Used: 2, Before: 2}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	web := l.Tenants["web"]
	if web == nil || web.Names["b.github.io"] == nil || web.Names["www.bbc.co.uk"] == nil || len(web.Names) != 2 {
		t.Fatalf("tenant web: %+v", web)
	}
	if got := web.Names["www.bbc.co.uk"].Last; !got.Equal(time.Unix(1796032920, 0)) {
		t.Errorf("a line without a time takes the journal's: %v", got)
	}
	b, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"--unit=egressfw.service", "--output=json", "--output-fields=MESSAGE", "--all", "--no-pager", "--quiet", "--since=@1796032830"}
	if !slices.Equal(args, want) {
		t.Errorf("journalctl %q, want %q", args, want)
	}
}

func TestReadJournalErrors(t *testing.T) {
	t.Run("journalctl missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if _, err := ReadJournal(Filter{}, NewLog()); !errors.Is(err, ErrNoJournalctl) || !strings.Contains(err.Error(), "--from FILE") {
			t.Errorf("err %v, want ErrNoJournalctl pointing at --from", err)
		}
	})
	t.Run("journalctl fails", func(t *testing.T) {
		fakeJournalctl(t, "echo 'Failed to open journal: permission denied' >&2\nexit 1")
		_, err := ReadJournal(Filter{}, NewLog())
		if err == nil || !strings.Contains(err.Error(), "Failed to open journal: permission denied") {
			t.Errorf("err %v, want journalctl's message", err)
		}
	})
}

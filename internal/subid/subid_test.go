package subid

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Entry
		wantBad []string
	}{
		{"useradd's lines", "alice:100000:65536\nbob:165536:65536\n",
			[]Entry{{"alice", Range{100000, 165535}, 1}, {"bob", Range{165536, 231071}, 2}}, nil},
		{"uid number owner, no final newline", "1000:200000:1", []Entry{{"1000", Range{200000, 200000}, 1}}, nil},
		{"blank and comment lines", "\n# managed by hand\nalice:1:2\n", []Entry{{"alice", Range{1, 2}, 3}}, nil},
		{"bad lines skipped, named", "alice:x:1\nbob:1\n:5:5\ncarol:10:0\ndave:-1:5\neve:1:2:3\nfrank :1:1\nok:7:1\n",
			[]Entry{{"ok", Range{7, 7}, 8}},
			[]string{"line 1:", "line 2:", "line 3:", "line 4: count 0", "line 5:", "line 6:", "line 7:"}},
		{"range cut at the highest id", "big:4294967290:100\n", []Entry{{"big", Range{4294967290, 4294967294}, 1}},
			[]string{"line 1: range 4294967290-4294967389 cut at 4294967294"}},
		{"start past the highest id", "big:4294967295:1\n", nil, []string{"line 1: start 4294967295"}},
		{"numbers too long", "big:99999999999:1\n", nil, []string{"line 1:"}},
		{"CRLF owner is not a name", "alice:1:1\r\n", nil, []string{"line 1:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := Parse([]byte(tc.in))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("entries = %v, want %v", got, tc.want)
			}
			if len(bad) != len(tc.wantBad) {
				t.Fatalf("bad = %v, want %d like %v", bad, len(tc.wantBad), tc.wantBad)
			}
			for i, w := range tc.wantBad {
				if !strings.HasPrefix(bad[i].Error(), w) {
					t.Errorf("bad[%d] = %v, want %q...", i, bad[i], w)
				}
			}
		})
	}
}

func TestParsePasswd(t *testing.T) {
	in := "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n+nis::::::\n# c\nbad:x:notanumber:1::/:\nalice:x:2000:2000::/:/bin/sh\nshort:x\n"
	want := map[string]uint32{"root": 0, "alice": 1000}
	if got := ParsePasswd([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Fatalf("ParsePasswd = %v, want %v", got, want)
	}
}

func TestOf(t *testing.T) {
	dir := t.TempDir()
	sub, pw := filepath.Join(dir, "subuid"), filepath.Join(dir, "passwd")
	write(t, sub, "alice:100000:65536\n1000:300000:10\nbob:165536:65536\nalias:400000:5\n")
	write(t, pw, "alice:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n")
	db, err := Load(sub, pw)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range db.Of(1000) {
		got = append(got, e.String())
	}
	if want := []string{"alice:100000:65536", "1000:300000:10", "alias:400000:5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Of(1000) = %v, want %v (by name, by number, and by a second name of the uid)", got, want)
	}
	if got := db.Of(4242); len(got) != 0 {
		t.Errorf("Of(4242) = %v, want none", got)
	}

	db, err = Load(filepath.Join(dir, "missing"), filepath.Join(dir, "missing2"))
	if err != nil || len(db.Entries) != 0 {
		t.Fatalf("missing files: %v, %v; want no entries and no error", db, err)
	}
	if _, err := Load(dir, pw); err == nil {
		t.Fatal("Load of a directory as the subuid file succeeded")
	}
}

// TestWatch: a file replaced by rename (as shadow-utils does), written in
// place and removed is reported; another file in the directory is not.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "subuid")
	write(t, sub, "alice:100000:65536\n")
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := Watch(ctx, sub, filepath.Join(dir, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		change func()
		want   bool
	}{
		{"unrelated file", func() { write(t, filepath.Join(dir, "subuid.lock"), "x") }, false},
		{"replaced by rename", func() {
			write(t, sub+"+", "alice:100000:65536\nbob:165536:65536\n")
			if err := os.Rename(sub+"+", sub); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"written in place", func() { write(t, sub, "bob:165536:65536\n") }, true},
		{"the other file created", func() { write(t, filepath.Join(dir, "passwd"), "bob:x:1001:1001::/:/bin/sh\n") }, true},
		{"removed", func() { os.Remove(sub) }, true},
	}
	for _, s := range steps {
		s.change()
		select {
		case <-ch:
			if !s.want {
				t.Fatalf("%s: reported", s.name)
			}
		case <-time.After(time.Second):
			if s.want {
				t.Fatalf("%s: not reported within a second", s.name)
			}
		}
		select { // a burst is one report
		case <-ch:
			t.Fatalf("%s: reported twice", s.name)
		case <-time.After(3 * settle):
		}
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a report after the context ended")
		}
	case <-time.After(time.Second):
		t.Fatal("channel not closed after the context ended")
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"alice:100000:65536\n", "1000:1:1", "#x\n\nbig:4294967290:100\n", "a:b:c\n::\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _ := Parse(data)
		for _, e := range entries {
			if e.Range.First > e.Range.Last || e.Range.Last > maxID || e.Owner == "" || e.Line < 1 {
				t.Fatalf("invalid entry %+v from %q", e, data)
			}
		}
	})
}

func FuzzParsePasswd(f *testing.F) {
	for _, s := range []string{"root:x:0:0:root:/root:/bin/bash\n", "+::::::\n", "a:x:4294967295:0::/:\n", "a:x:4294967296:0::/:\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for name := range ParsePasswd(data) {
			if name == "" || strings.Contains(name, ":") || strings.Contains(name, "\n") {
				t.Fatalf("invalid name %q from %q", name, data)
			}
		}
	})
}

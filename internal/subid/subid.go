// Package subid reads shadow-utils' subordinate-id file (/etc/subuid, see
// subuid(5)) and the user names it refers to (/etc/passwd), and watches both
// for changes. A process in a user namespace whose uid map was written by
// newuidmap owns its sockets as one of its user's subordinate uids, so
// whoever filters by uid has to know them.
//
// The parsers follow what newuidmap accepts: a line is "owner:start:count"
// with decimal numbers and a non-zero count; the owner is a user name or a
// uid number. Anything else is skipped (newuidmap ignores it too) and
// reported, naming the line. They allocate nothing per field but the owner
// and passwd names they return.
package subid

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
)

// Range is an inclusive range of ids.
type Range struct{ First, Last uint32 }

// String prints "FIRST-LAST".
func (r Range) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Entry is one valid line of a subordinate-id file.
type Entry struct {
	Owner string // a user name or a uid number, as written
	Range Range
	Line  int // 1-based
}

// String prints the entry as written: "owner:start:count".
func (e Entry) String() string {
	return fmt.Sprintf("%s:%d:%d", e.Owner, e.Range.First, uint64(e.Range.Last)-uint64(e.Range.First)+1)
}

// maxID is the highest id a user namespace can map: (uid_t)-1 is never one.
const maxID = math.MaxUint32 - 1

// Parse reads a subordinate-id file. Blank lines and lines starting with
// '#' are skipped; invalid lines are skipped and reported in bad. A range
// reaching past 4294967294 is cut there (and reported): the kernel maps no
// id above it.
func Parse(data []byte) (entries []Entry, bad []error) {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		owner, rest, ok1 := bytes.Cut(line, []byte{':'})
		start, count, ok2 := bytes.Cut(rest, []byte{':'})
		s, okS := parseUint(start)
		c, okC := parseUint(count)
		switch {
		case !ok1 || !ok2 || len(owner) == 0 || !okS || !okC || bytes.ContainsAny(owner, " \t\r"):
			bad = append(bad, fmt.Errorf("line %d: want \"owner:start:count\" with decimal numbers", n))
			continue
		case c == 0:
			bad = append(bad, fmt.Errorf("line %d: count 0 gives no ids", n))
			continue
		case s > maxID:
			bad = append(bad, fmt.Errorf("line %d: start %d is past the highest id, %d", n, s, uint64(maxID)))
			continue
		}
		last := s + c - 1
		if last > maxID {
			bad = append(bad, fmt.Errorf("line %d: range %d-%d cut at %d, the highest id", n, s, last, uint64(maxID)))
			last = maxID
		}
		entries = append(entries, Entry{Owner: string(owner), Range: Range{uint32(s), uint32(last)}, Line: n})
	}
	return entries, bad
}

// parseUint reads a decimal number below 2^33 (so start + count cannot
// overflow), without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// ParsePasswd returns the uid of every user name in a passwd(5) file. The
// first line of a name wins, as with getpwnam; lines that are not
// "name:password:uid:..." (NIS "+" lines, comments) are skipped.
func ParsePasswd(data []byte) map[string]uint32 {
	out := map[string]uint32{}
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		name, rest, ok1 := bytes.Cut(line, []byte{':'})
		_, rest, ok2 := bytes.Cut(rest, []byte{':'})
		uid, _, ok3 := bytes.Cut(rest, []byte{':'})
		u, ok := parseUint(uid)
		if !ok1 || !ok2 || !ok3 || !ok || u > math.MaxUint32 || len(name) == 0 || name[0] == '+' || name[0] == '-' || name[0] == '#' {
			continue
		}
		if _, dup := out[string(name)]; !dup {
			out[string(name)] = uint32(u)
		}
	}
	return out
}

// DB is a subordinate-id file with the user database its names resolve in.
type DB struct {
	Entries []Entry
	Bad     []error // lines skipped, by line number
	uids    map[string]uint32
}

// Load reads the subordinate-id file and the passwd file. A missing file
// reads as empty: a host without subordinate ids has none to cover.
func Load(subidPath, passwdPath string) (*DB, error) {
	sub, err := readOptional(subidPath)
	if err != nil {
		return nil, err
	}
	pw, err := readOptional(passwdPath)
	if err != nil {
		return nil, err
	}
	db := &DB{uids: ParsePasswd(pw)}
	db.Entries, db.Bad = Parse(sub)
	return db, nil
}

func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// Of returns the entries that give subordinate ids to uid: those whose
// owner is the uid's number, or a name the passwd file gives that uid (any
// of its names: newuidmap looks up the caller's, which is one of them).
func (db *DB) Of(uid uint32) []Entry {
	num := strconv.FormatUint(uint64(uid), 10)
	var out []Entry
	for _, e := range db.Entries {
		if e.Owner == num {
			out = append(out, e)
			continue
		}
		if u, ok := db.uids[e.Owner]; ok && u == uid {
			out = append(out, e)
		}
	}
	return out
}

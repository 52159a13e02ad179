package suggest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxLine bounds one input line; a longer one is skipped as garbage. A
// connection line is well under 4 KiB (its lists are bounded).
const MaxLine = 1 << 20

// Filter selects the connection lines to count.
type Filter struct {
	Tenant string    // "" for every tenant
	Since  time.Time // lines logged before it are skipped; zero: no bound
}

// Stats counts the input lines by what became of them.
type Stats struct {
	Lines    int // lines read (blank ones not counted)
	Used     int // connection lines counted
	Other    int // log lines of other messages (startup, reloads, ...)
	Garbage  int // not JSON, too long, or a connection line without a valid tenant or decision
	Filtered int // connection lines of other tenants (--tenant)
	Before   int // connection lines logged before Filter.Since
}

// String says what was read and skipped, for standard error.
func (s Stats) String() string {
	out := fmt.Sprintf("read %s: %d connection lines used", plural(s.Lines, "line"), s.Used)
	if s.Filtered > 0 {
		out += fmt.Sprintf(", %d of other tenants left out", s.Filtered)
	}
	if s.Before > 0 {
		out += fmt.Sprintf(", %d from before --since left out", s.Before)
	}
	out += fmt.Sprintf("; skipped %d lines of other messages and %d garbage lines (not JSON, too long, or without a valid tenant or decision)",
		s.Other, s.Garbage)
	return out
}

// Read reads log lines from r (egressfw's JSON lines, journalctl -o json
// entries, or either with a syslog prefix; mixed is fine) and adds the
// selected connection lines to l.
func Read(r io.Reader, f Filter, l *Log) (Stats, error) {
	var st Stats
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, tooLong, err := readLine(br)
		if len(b) > 0 || tooLong {
			st.Lines++
			st.add(b, tooLong, f, l)
		}
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("read log: %w", err)
		}
	}
}

func (st *Stats) add(b []byte, tooLong bool, f Filter, l *Log) {
	if tooLong {
		st.Garbage++
		return
	}
	rec, k := ParseLine(b)
	switch {
	case k == KindOther:
		st.Other++
	case k == KindGarbage:
		st.Garbage++
	case f.Tenant != "" && rec.Tenant != f.Tenant:
		st.Filtered++
	case !f.Since.IsZero() && !rec.Time.IsZero() && rec.Time.Before(f.Since):
		st.Before++
	default:
		st.Used++
		l.Add(rec)
	}
}

// readLine returns the next line without its newline. A line longer than
// MaxLine is consumed and reported as tooLong, without its bytes.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLine+1 { // +1: the newline
			tooLong, buf = true, nil
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return nil, true, err
		}
		if n := len(buf); n > 0 && buf[n-1] == '\n' {
			buf = buf[:n-1]
		}
		return buf, false, err
	}
}

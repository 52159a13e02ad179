// Package suggest turns egressfw's connection log into a tenant allowlist:
// the log of a report-mode rollout becomes allow_domains and allow_internal
// entries an operator can review and paste into the config.
//
// It reads the JSON lines the daemon writes (one per connection, msg
// "connection", and one per refused later request of a plain-HTTP
// connection, msg "request"), from a file, standard input or journald (journalctl -o
// json, whose MESSAGE field holds the line). Lines it cannot use (not JSON,
// other messages, connection lines without a tenant or a decision) are
// skipped and counted; lines of older egressfw versions work as long as they
// carry tenant, name and decision.
//
// The log is not trusted more than it must be: a name goes into the output
// only after dnsname.Normalize (so it can hold nothing but [a-z0-9._-]), a
// tenant name only if it is a valid config tenant name, and every comment is
// built from such names, addresses, numbers and checked reason codes, so no
// byte of a log line can break out of the TOML the operator pastes.
package suggest

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/egressfw/egressfw/internal/dnsname"
)

// Decisions a connection line carries.
const (
	DecisionAllow     = "allow"
	DecisionDeny      = "deny"
	DecisionWouldDeny = "would_deny" // report mode: let through, the policy said no
	DecisionError     = "error"      // allowed, but the upstream connection failed
)

// Record is what suggest uses of one connection line.
type Record struct {
	Tenant string
	// Name is the normalised DNS name the client asked for; "" when it
	// named an IP literal, nothing, or something that does not normalise
	// (BadName).
	Name    string
	BadName bool
	// Literal is the IP literal the client named, or the destination of a
	// TLS ClientHello without a server name (egressfw judges that as a
	// literal too).
	Literal  netip.Addr
	NoSNI    bool
	OrigDst  netip.AddrPort
	Dialed   netip.AddrPort
	Resolved []netip.Addr // the first few logged, for review comments
	Proto    string
	Decision string
	Mode     string
	Reason   string    // a checked code ([a-z0-9_]), or "" when absent or malformed
	Time     time.Time // zero when the line has none
}

// Kind classifies an input line.
type Kind uint8

// Kinds of input lines.
const (
	KindConnection Kind = iota // a usable connection line
	KindOther                  // a valid log line of another message
	KindGarbage                // not JSON, or a connection line missing what is needed
)

var (
	tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`) // as config's tenant name
	codeRE   = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)
)

// maxResolvedKept bounds the resolved addresses kept per record.
const maxResolvedKept = 4

// str is a JSON string field that tolerates any other type (or null) by
// leaving the value empty: a field an older or newer version wrote with
// another type does not make the whole line unusable.
type str struct {
	v  string
	ok bool
}

// UnmarshalJSON keeps a string value and ignores anything else.
func (s *str) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s.v); err == nil {
			s.ok = true
		}
	}
	return nil
}

// line is the JSON shape of egressfw's connection log line (see
// internal/proxy/record.go). Older versions logged durations as *_ms
// floats; suggest reads none of those fields.
type line struct {
	Msg      str `json:"msg"`
	Time     str `json:"time"`
	Tenant   str `json:"tenant"`
	Name     str `json:"name"`
	Decision str `json:"decision"`
	Mode     str `json:"mode"`
	Reason   str `json:"reason"`
	Proto    str `json:"proto"`
	OrigDst  str `json:"orig_dst"`
	Dialed   str `json:"dialed"`
	Resolved str `json:"resolved"`
}

// journalEntry is a line of journalctl -o json. MESSAGE is a string, or an
// array of bytes when journald found it not to be clean UTF-8 text.
type journalEntry struct {
	Message  json.RawMessage `json:"MESSAGE"`
	Realtime str             `json:"__REALTIME_TIMESTAMP"` // microseconds since the epoch
}

// ParseLine classifies one input line and, for a connection line, returns
// its record. It accepts egressfw's own JSON lines, journalctl -o json
// entries (the MESSAGE field is parsed), and lines with a syslog-style
// prefix before the JSON ("Nov 23 12:00:00 host egressfw[1]: {...}").
func ParseLine(b []byte) (Record, Kind) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		i := bytes.Index(b, []byte(": {"))
		if i < 0 {
			return Record{}, KindGarbage
		}
		b = b[i+2:]
	}
	if msg, when, ok := journalMessage(b); ok {
		if msg = bytes.TrimSpace(msg); len(msg) == 0 {
			return Record{}, KindGarbage
		}
		if msg[0] != '{' {
			// Plain text in the unit's journal: systemd's own messages
			// about the unit ("Started egressfw.service"), or stderr.
			return Record{}, KindOther
		}
		r, k := parseDaemonLine(msg)
		if k == KindConnection && r.Time.IsZero() {
			r.Time = when
		}
		return r, k
	}
	return parseDaemonLine(b)
}

// journalMessage extracts MESSAGE and the entry's time from a journalctl
// JSON entry; ok is false when b is not one, msg nil when its MESSAGE is
// neither text nor bytes.
func journalMessage(b []byte) (msg []byte, when time.Time, ok bool) {
	if !bytes.Contains(b, []byte(`"MESSAGE"`)) {
		return nil, time.Time{}, false // not worth a second parse
	}
	var e journalEntry
	if json.Unmarshal(b, &e) != nil || len(e.Message) == 0 {
		return nil, time.Time{}, false
	}
	if us, err := strconv.ParseInt(e.Realtime.v, 10, 64); err == nil && us > 0 {
		when = time.UnixMicro(us).UTC()
	}
	var s string
	if json.Unmarshal(e.Message, &s) == nil {
		return []byte(s), when, true
	}
	var raw []int
	if json.Unmarshal(e.Message, &raw) != nil {
		return nil, when, true // MESSAGE of another type (null: elided)
	}
	msg = make([]byte, 0, len(raw))
	for _, c := range raw {
		msg = append(msg, byte(c))
	}
	return msg, when, true
}

func parseDaemonLine(b []byte) (Record, Kind) {
	var l line
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &l) != nil {
		return Record{}, KindGarbage
	}
	// "request": a later request of a plain-HTTP connection that was
	// refused (or that report mode let through), which names its own host.
	if l.Msg.ok && l.Msg.v != "connection" && l.Msg.v != "request" {
		return Record{}, KindOther
	}
	// A line without msg is used when it has what a connection line needs.
	r := Record{Tenant: l.Tenant.v, Decision: l.Decision.v, Mode: l.Mode.v, Proto: code(l.Proto.v)}
	if !tenantRE.MatchString(r.Tenant) || !validDecision(r.Decision) {
		return Record{}, KindGarbage
	}
	if r.Mode != "enforce" && r.Mode != "report" {
		r.Mode = ""
		if r.Decision == DecisionWouldDeny {
			r.Mode = "report"
		}
	}
	r.Reason = code(l.Reason.v)
	r.OrigDst, _ = netip.ParseAddrPort(l.OrigDst.v)
	r.Dialed, _ = netip.ParseAddrPort(l.Dialed.v)
	r.Resolved = parseAddrs(l.Resolved.v)
	if t, err := time.Parse(time.RFC3339Nano, l.Time.v); err == nil {
		r.Time = t.UTC()
	}
	r.setName(l.Name.v)
	return r, KindConnection
}

// setName sorts the logged name into a DNS name, an IP literal or a bad
// name. A TLS ClientHello without a server name is judged (and so shown)
// as a literal of its destination.
func (r *Record) setName(name string) {
	if name == "" {
		if r.Proto == "tls" && r.OrigDst.IsValid() {
			r.Literal, r.NoSNI = r.OrigDst.Addr().Unmap(), true
		}
		return
	}
	n, addr, err := dnsname.Host(name)
	switch {
	case err != nil:
		r.BadName = true
	case addr.IsValid():
		r.Literal = addr.Unmap()
	default:
		r.Name = n
	}
}

func validDecision(d string) bool {
	switch d {
	case DecisionAllow, DecisionDeny, DecisionWouldDeny, DecisionError:
		return true
	}
	return false
}

// code returns s if it is a plain code word ([a-z0-9_]), else "".
func code(s string) string {
	if codeRE.MatchString(s) {
		return s
	}
	return ""
}

// parseAddrs reads the log's "a, b, c (+N more)" list, keeping the first
// few valid addresses.
func parseAddrs(s string) []netip.Addr {
	var out []netip.Addr
	for _, f := range bytes.FieldsFunc([]byte(s), func(r rune) bool { return r == ',' || r == ' ' }) {
		if a, err := netip.ParseAddr(string(f)); err == nil {
			out = append(out, a.Unmap())
			if len(out) == maxResolvedKept {
				break
			}
		}
	}
	return out
}

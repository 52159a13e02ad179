package suggest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxListed bounds each commented list of a tenant (refusals, literals,
// denials); the rest is summarised in one line.
const maxListed = 50

// String names the destination for a comment: name:port, address:port, or
// a placeholder for a request without a usable name. Never a raw log byte.
func (d Dest) String() string {
	host := d.Name
	switch {
	case d.Addr.IsValid():
		host = d.Addr.String()
		if d.Addr.Is6() {
			host = "[" + host + "]"
		}
	case d.Bad:
		host = "(invalid name)"
	case host == "":
		host = "(no name)"
	}
	if d.Port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(int(d.Port))
}

// commenter writes comment lines; every line is cleaned so no byte can end
// the comment or the TOML line.
type commenter struct {
	w   io.Writer
	err error
}

func (c *commenter) printf(format string, args ...any) {
	c.raw(clean(fmt.Sprintf(format, args...)))
}

// comment writes "# text" (or "#" for an empty text).
func (c *commenter) comment(format string, args ...any) {
	s := clean(fmt.Sprintf(format, args...))
	if s == "" {
		c.raw("#")
		return
	}
	c.raw("# " + s)
}

func (c *commenter) raw(s string) {
	if c.err == nil {
		_, c.err = io.WriteString(c.w, s+"\n")
	}
}

// clean replaces control bytes and non-ASCII with '?'.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

// safePattern reports whether p can go into a TOML string unquoted by
// escapes: what dnsname.Normalize produces, with an optional "*.".
func safePattern(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '*') {
			return false
		}
	}
	return p != ""
}

func uses(u Use) string {
	s := plural(u.Count, "connection")
	if u.Failed > 0 {
		s += fmt.Sprintf(" (%d could not reach the server)", u.Failed)
	}
	return s + ", last " + stamp(u.Last)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}

// span is " from FIRST to LAST" of the tenant's lines, if they had times.
func span(t *Tenant) string {
	if t.First.IsZero() {
		return " (no times logged)"
	}
	return " from " + stamp(t.First) + " to " + stamp(t.Last)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// entryNote is the comment of an allow_domains entry.
func entryNote(e Entry) string {
	if !e.Wildcard() {
		return uses(e.Use)
	}
	d := strings.TrimPrefix(e.Pattern, "*.")
	var short []string
	for i, n := range e.Names {
		if i == 6 {
			short = append(short, fmt.Sprintf("+%d more", len(e.Names)-i))
			break
		}
		short = append(short, strings.TrimSuffix(n, "."+d))
	}
	return fmt.Sprintf("%d names (%s), %s", len(e.Names), strings.Join(short, ", "), uses(e.Use))
}

// internalLine is an allow_internal entry on one line, for lists and diffs.
func internalLine(in Internal) string {
	var s string
	if in.Host != "" {
		s = "host = " + strconv.Quote(in.Host)
	} else {
		s = "cidr = " + strconv.Quote(in.CIDR.String())
	}
	if len(in.Ports) > 0 {
		s += ", ports = " + portList(in.Ports)
	}
	return s
}

func portList(ps []uint16) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = strconv.Itoa(int(p))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// internalNote is the comment of an allow_internal entry.
func internalNote(in Internal) string {
	if !in.Review {
		return "in use: " + uses(in.Use)
	}
	var to string
	if len(in.Resolved) > 0 {
		addrs := make([]string, len(in.Resolved))
		for i, a := range in.Resolved {
			addrs[i] = a.String()
		}
		to = " resolving to " + strings.Join(addrs, ", ")
	}
	why := "an internal address"
	if in.Reason == reasonInternalPort {
		why = "an internal address that allow_internal covers on other ports"
	}
	return fmt.Sprintf("REVIEW: report mode let this through (%s%s); %s", why, to, uses(in.Use))
}

// header is the first comment lines of a tenant's section.
func (p *Plan) header(c *commenter, configName string) {
	c.comment("---- tenant %q ----", p.Tenant)
	if p.Log == nil {
		return
	}
	t := p.Log
	var modes []string
	for _, m := range []string{"report", "enforce"} {
		if n := t.Modes[m]; n > 0 {
			modes = append(modes, fmt.Sprintf("%s %d", m, n))
		}
	}
	mode := ""
	if len(modes) > 0 {
		mode = " (mode " + strings.Join(modes, ", ") + ")"
	}
	c.comment("%s%s%s.", plural(t.Conns, "connection"), span(t), mode)
	if t.Untracked > 0 {
		c.comment("WARNING: %s were not tracked (more than %d distinct destinations); the list is incomplete.",
			plural(t.Untracked, "connection"), MaxKeysPerTenant)
	}
	if configName != "" && p.Current == nil {
		c.comment("Tenant %q is not in %s: add a [[tenant]] table for it.", p.Tenant, configName)
	}
}

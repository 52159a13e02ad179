package suggest

import (
	"fmt"
	"io"
	"slices"
	"strconv"
)

// WriteDiff writes the change the plan makes to the tenant's allow_domains
// and allow_internal in the current config, unified-diff style: "-" for an
// entry the suggestion drops, "+" for one it adds, " " for one it keeps.
// configName labels the current side.
func (p *Plan) WriteDiff(w io.Writer, configName string) error {
	c := &commenter{w: w}
	if p.Log == nil {
		c.printf("--- %s  tenant %q", configName, p.Tenant)
		c.printf("+++ suggested  tenant %q: no connections in the window, no change suggested", p.Tenant)
		c.raw("")
		return c.err
	}
	if p.Current == nil {
		c.printf("--- %s  (no tenant %q: a new [[tenant]] table)", configName, p.Tenant)
	} else {
		c.printf("--- %s  tenant %q", configName, p.Tenant)
	}
	c.printf("+++ suggested  tenant %q, %s%s", p.Tenant, plural(p.Log.Conns, "connection"), span(p.Log))
	d := &differ{c: c}
	p.diffDomains(d)
	p.diffInternal(d)
	c.comment("%d added, %d removed, %d kept; %d IP-literal destinations, %d denied (see the fragment without --diff).",
		d.added, d.removed, d.kept, len(p.Lits), len(p.Denied))
	c.raw("")
	return c.err
}

// differ writes diff lines and counts them by mark.
type differ struct {
	c                    *commenter
	added, removed, kept int
}

func (d *differ) line(mark byte, entry, note string) {
	d.c.printf("%c%s  # %s", mark, entry, note)
	switch mark {
	case '+':
		d.added++
	case '-':
		d.removed++
	default:
		d.kept++
	}
}

func (p *Plan) diffDomains(d *differ) {
	d.c.raw("@@ allow_domains @@")
	var cur []string
	if p.Current != nil {
		cur = p.Current.AllowDomains
	}
	suggested := map[string]bool{}
	for _, e := range p.Domains {
		suggested[e.Pattern] = true
	}
	for _, pat := range cur {
		switch {
		case suggested[pat]:
		case slices.Contains(p.Unused, pat):
			d.line('-', strconv.Quote(pat), "not used in the window")
		default:
			d.line('-', strconv.Quote(pat), "used in the window; replaced by the entries below")
		}
	}
	for _, e := range p.Domains {
		mark := byte('+')
		if slices.Contains(cur, e.Pattern) {
			mark = ' '
		}
		d.line(mark, strconv.Quote(e.Pattern), entryNote(e))
	}
}

func (p *Plan) diffInternal(d *differ) {
	d.c.raw("@@ allow_internal @@")
	for _, in := range p.UnusedI {
		d.line('-', internalLine(in), "not used in the window")
	}
	for _, in := range p.Intern {
		mark := byte(' ')
		if in.Review {
			mark = '+'
		}
		d.line(mark, internalLine(in), internalNote(in))
	}
}

// Summary is one line about the plan, for standard error.
func (p *Plan) Summary() string {
	if p.Log == nil {
		return fmt.Sprintf("tenant %q: no connections", p.Tenant)
	}
	review := 0
	for _, in := range p.Intern {
		if in.Review {
			review++
		}
	}
	return fmt.Sprintf("tenant %q: %s, %d allow_domains entries, %d allow_internal to review",
		p.Tenant, plural(p.Log.Conns, "connection"), len(p.Domains), review)
}

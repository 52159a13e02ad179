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
	cur := p.Current
	if cur == nil {
		c.printf("--- %s  (no tenant %q: a new [[tenant]] table)", configName, p.Tenant)
	} else {
		c.printf("--- %s  tenant %q", configName, p.Tenant)
	}
	c.printf("+++ suggested  tenant %q, %s%s", p.Tenant, plural(p.Log.Conns, "connection"), span(p.Log))
	var added, removed, kept int
	tally := func(mark byte) {
		switch mark {
		case '+':
			added++
		case '-':
			removed++
		default:
			kept++
		}
	}
	c.raw("@@ allow_domains @@")
	var curDomains []string
	if cur != nil {
		curDomains = cur.AllowDomains
	}
	suggested := map[string]bool{}
	for _, e := range p.Domains {
		suggested[e.Pattern] = true
	}
	for _, d := range curDomains {
		if !suggested[d] {
			note := "# used in the window; replaced by the entries below"
			if slices.Contains(p.Unused, d) {
				note = "# not used in the window"
			}
			c.printf("-%s  %s", strconv.Quote(d), note)
			tally('-')
		}
	}
	for _, e := range p.Domains {
		mark := byte('+')
		if slices.Contains(curDomains, e.Pattern) {
			mark = ' '
		}
		c.printf("%c%s  # %s", mark, strconv.Quote(e.Pattern), entryNote(e))
		tally(mark)
	}
	c.raw("@@ allow_internal @@")
	for _, in := range p.UnusedI {
		c.printf("-%s  # not used in the window", internalLine(in))
		tally('-')
	}
	for _, in := range p.Intern {
		mark := byte(' ')
		if in.Review {
			mark = '+'
		}
		c.printf("%c%s  # %s", mark, internalLine(in), internalNote(in))
		tally(mark)
	}
	c.comment("%d added, %d removed, %d kept; %d IP-literal destinations, %d denied (see the fragment without --diff).",
		added, removed, kept, len(p.Lits), len(p.Denied))
	c.raw("")
	return c.err
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

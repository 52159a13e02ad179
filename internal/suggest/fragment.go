package suggest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteFragment writes the plan as a TOML fragment for the tenant's
// [[tenant]] table: allow_domains, the commented findings, then the
// [[tenant.allow_internal]] tables. configName names the config read ("" if
// none). A tenant without connections gets comments only.
func (p *Plan) WriteFragment(w io.Writer, configName string) error {
	c := &commenter{w: w}
	p.header(c, configName)
	if p.Log == nil {
		p.noConnections(c)
		return c.err
	}
	c.comment("Paste into the [[tenant]] table with name = %q, in place of its allow_domains and", p.Tenant)
	c.comment("[[tenant.allow_internal]] tables: after its other keys, before its other [[tenant.*]] tables.")
	if p.Current != nil && p.Current.Mode == "report" || p.Current == nil && p.Log.Modes["report"] > 0 {
		c.comment(`Then switch it to mode = "enforce" once the list is reviewed.`)
	}
	p.writeDomains(c)
	p.writeFindings(c)
	for _, in := range p.Intern {
		c.raw("")
		c.printf("  [[tenant.allow_internal]]  # %s", internalNote(in))
		if in.Host != "" {
			c.raw("  host = " + strconv.Quote(in.Host))
		} else {
			c.raw("  cidr = " + strconv.Quote(in.CIDR.String()))
		}
		if len(in.Ports) > 0 {
			c.raw("  ports = " + portList(in.Ports))
		}
	}
	c.raw("")
	return c.err
}

func (p *Plan) noConnections(c *commenter) {
	c.comment("No connections in the window: nothing to suggest, the table is best left as it is.")
	if len(p.Unused) > 0 {
		c.comment("Its allow_domains %s matched no connection.", quoteList(p.Unused))
	}
	for _, in := range p.UnusedI {
		c.comment("Its allow_internal %s was not used.", internalLine(in))
	}
	c.raw("")
}

func (p *Plan) writeDomains(c *commenter) {
	if len(p.Domains) == 0 {
		c.comment("No name was reached: an empty allow_domains allows no name (allow_internal hosts excepted).")
		c.raw("allow_domains = []")
		return
	}
	width := 0
	for _, e := range p.Domains {
		width = max(width, min(len(e.Pattern)+3, 48))
	}
	c.raw("allow_domains = [")
	for _, e := range p.Domains {
		if !safePattern(e.Pattern) {
			continue // cannot happen: names are normalised
		}
		q := strconv.Quote(e.Pattern) + ","
		c.printf("  %-*s # %s", width, q, entryNote(e))
	}
	c.raw("]")
}

// writeFindings writes what the tenant did that the list does not allow,
// and what the current list allows that was not used, as comments.
func (p *Plan) writeFindings(c *commenter) {
	for _, k := range p.Kept {
		c.comment("")
		c.comment("Not collapsed to %q: egressfw refused %s under it as not on the allow list.", k.Wildcard, names(k.Because))
	}
	if len(p.Unused) > 0 || len(p.UnusedI) > 0 {
		c.comment("")
		c.comment("In the current config, not used in the window (left out above: candidates to drop):")
		for _, u := range p.Unused {
			c.comment("  allow_domains %q", u)
		}
		for _, in := range p.UnusedI {
			c.comment("  allow_internal %s", internalLine(in))
		}
	}
	sections := []struct {
		head    []string
		list    []RefusalUse
		literal bool
	}{
		{[]string{"Internal destinations not suggested: no port logged, or a port not in listener.intercept_ports",
			"(an allow_internal entry without ports would open every intercepted port):"}, p.NoPort, false},
		{[]string{"IP-literal destinations. allow_domains cannot name an address: egressfw lets a tenant",
			`connect to a literal only while its allow_domains is ["*"] (an internal one also needs an`,
			"allow_internal cidr), so the list above refuses these. Have the client use a name:"}, p.Lits, true},
		{[]string{"Not added: requests without a usable name, and report-mode refusals the allow list does",
			"not decide (deny list, DNS, protocol); the list above keeps them refused:"}, p.Refused, false},
		{[]string{"Denied by egressfw (confirm they should stay denied):"}, p.Denied, false},
	}
	for _, sec := range sections {
		if len(sec.list) == 0 {
			continue
		}
		c.comment("")
		for _, h := range sec.head {
			c.comment("%s", h)
		}
		listRefusals(c, sec.list, sec.literal)
	}
}

func listRefusals(c *commenter, rs []RefusalUse, literal bool) {
	for i, r := range rs {
		if i == maxListed {
			rest := 0
			for _, x := range rs[i:] {
				rest += x.Count
			}
			c.comment("  ... and %d more destinations (%s)", len(rs)-i, plural(rest, "connection"))
			return
		}
		what := r.Reason
		if what == "" {
			what = "no reason logged"
		}
		if literal && r.NoSNI {
			what = "TLS without a server name, " + what
		}
		c.comment("  %s: %s, %s", r.Dest, what, uses(r.Use))
	}
}

func names(ns []string) string {
	if len(ns) > 5 {
		return strings.Join(ns[:5], ", ") + fmt.Sprintf(" and %d more", len(ns)-5)
	}
	return strings.Join(ns, ", ")
}

func quoteList(ps []string) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = strconv.Quote(p)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

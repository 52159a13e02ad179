package suggest

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/egressfw/egressfw/internal/config"
)

// Internal is one suggested allow_internal entry.
type Internal struct {
	Host  string       // a name, or ""
	CIDR  netip.Prefix // or the zero prefix
	Ports []uint16     // sorted; empty: every intercept port
	// Review marks a new candidate (an internal destination report mode
	// let through); otherwise the entry is from the current config and
	// was used in the window.
	Review bool
	Reason string // for a candidate: internal_address or internal_port
	Use
}

// Plan is the suggestion for one tenant.
type Plan struct {
	Tenant  string
	Log     *Tenant        // nil when the tenant had no connection in the window
	Current *config.Tenant // nil when there is no config or the tenant is not in it
	Domains []Entry        // the suggested allow_domains
	Kept    []Kept         // wildcards not suggested, and why
	Intern  []Internal     // the suggested allow_internal
	Unused  []string       // current allow_domains patterns no name in the window matched
	UnusedI []Internal     // current allow_internal entries not used in the window
	Refused []RefusalUse   // report mode: would-be refusals that are not candidates
	Lits    []RefusalUse   // IP-literal destinations
	Denied  []RefusalUse   // connections refused
	NoPort  []RefusalUse   // internal destinations on a port allow_internal cannot name
	// Covered are names left out of Domains: an allow_internal host entry
	// (kept or candidate) allows them; dropping a candidate drops its name.
	Covered map[string]bool
}

// RefusalUse is a refusal with its counts, for listing.
type RefusalUse struct {
	Refusal
	Use
}

// Options tune a plan.
type Options struct {
	// Collapse is the least number of distinct subdomains of one
	// registrable domain that become "*.domain"; 0 never collapses.
	Collapse int
	// InterceptPorts are the config's listener.intercept_ports; nil
	// means the default. An allow_internal candidate gets only these.
	InterceptPorts []uint16
}

// NewPlan builds the suggestion for tenant t (nil: no connections) against
// its current config cur (nil: unknown).
func NewPlan(name string, t *Tenant, cur *config.Tenant, o Options) *Plan {
	p := &Plan{Tenant: name, Log: t, Current: cur, Covered: map[string]bool{}}
	if t == nil {
		t = &Tenant{Name: name}
	}
	intercepted := o.InterceptPorts
	if intercepted == nil {
		intercepted = config.Default().Listener.InterceptPorts
	}
	p.internal(t, cur, intercepted)
	names := map[string]*Use{}
	for n, u := range t.Names {
		if !p.Covered[n] {
			names[n] = u
		}
	}
	refused := map[string]bool{}
	for k := range t.Denied {
		if k.Reason == reasonNotAllowed && k.Name != "" {
			refused[k.Name] = true
		}
	}
	p.Domains, p.Kept = Collapse(names, refused, o.Collapse)
	if cur != nil {
		for _, pat := range cur.AllowDomains {
			if !patternUsed(pat, t) {
				p.Unused = append(p.Unused, pat)
			}
		}
	}
	p.Refused, p.Lits, p.Denied = listed(t.Refused), listed(t.Literals), listed(t.Denied)
	return p
}

// internal keeps the current allow_internal entries used in the window
// and adds the internal destinations report mode let through as
// candidates for review.
func (p *Plan) internal(t *Tenant, cur *config.Tenant, intercepted []uint16) {
	if cur != nil {
		for _, e := range cur.AllowInternal {
			in := Internal{Host: e.Host, CIDR: e.CIDR, Ports: sortedPorts(e.Ports)}
			if u, ok := internalUse(e, t); ok {
				in.Use = u
				p.Intern = append(p.Intern, in)
				if e.Host != "" {
					p.Covered[e.Host] = true
				}
			} else {
				p.UnusedI = append(p.UnusedI, in)
			}
		}
	}
	byName := map[string]*Internal{}
	var cands []*Internal
	for d, u := range t.Internal {
		if !slices.Contains(intercepted, d.Port) {
			// No port logged, or one the listener no longer intercepts:
			// an entry without ports would open every port.
			p.NoPort = append(p.NoPort, RefusalUse{Refusal{d, t.InternalReason[d]}, *u})
			continue
		}
		in := byName[d.Name]
		if in == nil {
			in = &Internal{Host: d.Name, Review: true}
			byName[d.Name] = in
			cands = append(cands, in)
			p.Covered[d.Name] = true // the host entry allows the name
		}
		if !slices.Contains(in.Ports, d.Port) {
			in.Ports = append(in.Ports, d.Port)
		}
		if in.Reason == "" || t.InternalReason[d] == reasonInternal {
			in.Reason = t.InternalReason[d]
		}
		in.merge(u)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Host < cands[j].Host })
	for _, in := range cands {
		slices.Sort(in.Ports)
		p.Intern = append(p.Intern, *in)
	}
	sort.Slice(p.NoPort, func(i, j int) bool { return p.NoPort[i].String() < p.NoPort[j].String() })
}

// internalUse sums the use of a current allow_internal entry: a host entry
// by the connections to its name on its ports, a CIDR entry by the allowed
// connections that reached an address in it on its ports.
func internalUse(e config.AllowInternal, t *Tenant) (Use, bool) {
	var u Use
	used := false
	if e.Host != "" {
		if n := t.Names[e.Host]; n != nil {
			u.merge(n)
			used = true
		}
		for d, n := range t.Internal {
			if d.Name == e.Host && portIn(e.Ports, d.Port) {
				u.merge(n)
				used = true
			}
		}
		return u, used
	}
	for ap, n := range t.Reached {
		if e.CIDR.Contains(ap.Addr()) && portIn(e.Ports, ap.Port()) {
			u.merge(n)
			used = true
		}
	}
	return u, used
}

// patternUsed reports whether a name the tenant reached in the window (or
// an internal destination it asked for by name) matches the allow_domains
// pattern, with egressfw's rules: "*" matches any name, "*.d" strict
// subdomains of d, anything else only itself.
func patternUsed(pat string, t *Tenant) bool {
	if pat == "*" {
		return len(t.Names) > 0 || len(t.Internal) > 0 || len(t.Literals) > 0
	}
	match := func(n string) bool {
		if d, ok := strings.CutPrefix(pat, "*."); ok {
			return strings.HasSuffix(n, "."+d)
		}
		return n == pat
	}
	for n := range t.Names {
		if match(n) {
			return true
		}
	}
	for d := range t.Internal {
		if match(d.Name) {
			return true
		}
	}
	return false
}

func portIn(ports []uint16, p uint16) bool { return len(ports) == 0 || slices.Contains(ports, p) }

func sortedPorts(ps []uint16) []uint16 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return out
}

// listed sorts a refusal map by count (most first), then destination.
func listed(m map[Refusal]*Use) []RefusalUse {
	out := make([]RefusalUse, 0, len(m))
	for k, u := range m {
		out = append(out, RefusalUse{k, *u})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].String() < out[j].String()
	})
	return out
}

package policy

import (
	"errors"
	"fmt"
	"github.com/egressfw/egressfw/internal/dnsname"
	"net/netip"
	"strings"
)

// Mode says whether a tenant's decisions are enforced.
type Mode uint8

// Modes of a tenant.
const (
	// Enforce blocks what the policy denies.
	Enforce Mode = iota
	// Report lets every connection through to where it was going and
	// only records what the policy would have done.
	Report
)

// String returns the mode's config spelling.
func (m Mode) String() string {
	switch m {
	case Enforce:
		return "enforce"
	case Report:
		return "report"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// InternalRule is one allow_internal entry: internal addresses a tenant may
// reach, either those a given name resolves to (Host) or those in a block
// (Prefix), on the listed ports (empty means any port).
type InternalRule struct {
	Host   string       // normalised name, or "" for a Prefix rule
	Prefix netip.Prefix // or the zero Prefix for a Host rule
	Ports  []uint16
}

// Tenant is one tenant's policy as the daemon hands it over, with names and
// patterns already normalised. Allow and Deny hold patterns: "*" (any name),
// "example.com" (exactly that name) or "*.example.com" (strict subdomains,
// not the apex).
type Tenant struct {
	Name     string
	Mode     Mode
	Allow    []string
	Deny     []string
	Internal []InternalRule
}

// CompiledTenant is a Tenant prepared for alloc-free matching. It is
// immutable and safe for concurrent use.
type CompiledTenant struct {
	name      string
	mode      Mode
	allow     patternSet
	deny      patternSet
	rules     []InternalRule
	hostRules map[string][]int // name -> indices into rules
	cidrRules []int
}

// Name returns the tenant's name.
func (t *CompiledTenant) Name() string { return t.name }

// Mode returns the tenant's mode.
func (t *CompiledTenant) Mode() Mode { return t.mode }

// ErrInvalidTenant is wrapped by every error Compile returns.
var ErrInvalidTenant = errors.New("invalid tenant policy")

// Compile validates t and builds the maps used for matching. Each
// allow_internal Host is added to the allow list as an exact name.
func Compile(t Tenant) (*CompiledTenant, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("compiling tenant %q: %s: %w", t.Name, fmt.Sprintf(format, args...), ErrInvalidTenant)
	}
	if t.Mode != Enforce && t.Mode != Report {
		return nil, fail("unknown mode %d", t.Mode)
	}
	ct := &CompiledTenant{name: t.Name, mode: t.Mode, hostRules: map[string][]int{}}
	for _, p := range t.Allow {
		if err := ct.allow.add(p); err != nil {
			return nil, fail("allow_domains: %v", err)
		}
	}
	for _, p := range t.Deny {
		if err := ct.deny.add(p); err != nil {
			return nil, fail("deny_domains: %v", err)
		}
	}
	for i, r := range t.Internal {
		r.Ports = append([]uint16(nil), r.Ports...)
		for _, port := range r.Ports {
			if port == 0 {
				return nil, fail("allow_internal entry %d: port 0", i)
			}
		}
		switch {
		case r.Host != "" && r.Prefix.IsValid():
			return nil, fail("allow_internal entry %d: has both a host and a CIDR", i)
		case r.Host != "":
			if err := checkName(r.Host); err != nil {
				return nil, fail("allow_internal entry %d: %v", i, err)
			}
			ct.hostRules[r.Host] = append(ct.hostRules[r.Host], len(ct.rules))
			if err := ct.allow.add(r.Host); err != nil {
				return nil, fail("allow_internal entry %d: %v", i, err)
			}
		case r.Prefix.IsValid():
			r.Prefix = r.Prefix.Masked()
			ct.cidrRules = append(ct.cidrRules, len(ct.rules))
		default:
			return nil, fail("allow_internal entry %d: needs a host or a CIDR", i)
		}
		ct.rules = append(ct.rules, r)
	}
	return ct, nil
}

// coverage is how the allow_internal rules treat one internal address.
type coverage uint8

const (
	notCovered  coverage = iota
	coveredPort          // a rule covers the address but not this port
	covered
)

// covers reports whether an allow_internal rule lets the tenant reach the
// internal address a (classified as c) for name on port; port 0 is a
// lookup's, which any port of a rule covers. The host's own
// addresses are covered only by a Host rule or a single-address CIDR, so a
// broad block granted for a private network does not also open the host's
// own services (hairpin protection).
func (t *CompiledTenant) covers(name string, a netip.Addr, c *Class, port uint16) coverage {
	res := notCovered
	if name != "" {
		for _, i := range t.hostRules[name] {
			if portIn(t.rules[i].Ports, port) {
				return covered
			}
			res = coveredPort
		}
	}
	a = a.Unmap()
	for _, i := range t.cidrRules {
		p := t.rules[i].Prefix
		if !p.Contains(a) || (c.Source == SourceHost && !p.IsSingleIP()) {
			continue
		}
		if portIn(t.rules[i].Ports, port) {
			return covered
		}
		res = coveredPort
	}
	return res
}

func portIn(ports []uint16, port uint16) bool {
	if len(ports) == 0 || port == 0 {
		return true
	}
	for _, p := range ports {
		if p == port {
			return true
		}
	}
	return false
}

// patternSet is a compiled list of name patterns. Map values are the
// patterns as written, for decision details.
type patternSet struct {
	any    bool
	exact  map[string]string
	suffix map[string]string // "example.com" for "*.example.com"
}

func (s *patternSet) add(p string) error {
	if p == "*" {
		s.any = true
		return nil
	}
	base, wild := strings.CutPrefix(p, "*.")
	if err := checkName(base); err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	m := &s.exact
	if wild {
		m = &s.suffix
	}
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[base] = p
	return nil
}

// match returns the pattern that matches name, if any. It looks up the name
// and each proper parent suffix, so it costs O(labels) map lookups and does
// not allocate.
func (s *patternSet) match(name string) (string, bool) {
	if s.any {
		return "*", true
	}
	if p, ok := s.exact[name]; ok {
		return p, true
	}
	if len(s.suffix) == 0 {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if p, ok := s.suffix[name[i+1:]]; ok {
				return p, true
			}
		}
	}
	return "", false
}

// checkName rejects a name that is not already in dnsname's canonical form:
// this package does not normalise, so such a pattern would silently never
// match.
func checkName(n string) error {
	m, err := dnsname.Normalize(n)
	if err != nil {
		return err
	}
	if m != n {
		return fmt.Errorf("name %q is not normalised (want %q)", n, m)
	}
	return nil
}

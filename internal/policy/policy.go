package policy

import (
	"fmt"
	"net/netip"
)

// Code is a low-cardinality verdict, suitable as a metrics label.
type Code uint8

// Verdict codes.
const (
	CodeAllowed           Code = iota // allowed
	CodeDeniedDomain                  // the name matches deny_domains
	CodeNotAllowedDomain              // the name matches no allow_domains pattern
	CodeInternalAddress               // an address is internal and no allow_internal entry covers it
	CodeInternalPort                  // an allow_internal entry covers the address, but not the port
	CodeNoAddresses                   // the name resolved to no address
	CodeLiteralNotAllowed             // an IP literal, and the tenant's allow list is not "*"
	CodeLiteralMismatch               // the IP literal is not the original destination
	CodeNoName                        // neither a name nor an IP literal
	CodeInvalidName                   // the caller could not normalise the name
	CodeNoTenant                      // the connection belongs to no tenant
)

var codeNames = [...]string{
	CodeAllowed:           "allowed",
	CodeDeniedDomain:      "denied_domain",
	CodeNotAllowedDomain:  "not_allowed_domain",
	CodeInternalAddress:   "internal_address",
	CodeInternalPort:      "internal_port",
	CodeNoAddresses:       "no_addresses",
	CodeLiteralNotAllowed: "literal_not_allowed",
	CodeLiteralMismatch:   "literal_mismatch",
	CodeNoName:            "no_name",
	CodeInvalidName:       "invalid_name",
	CodeNoTenant:          "no_tenant",
}

// String returns the code's metrics label, e.g. "denied_domain".
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", uint8(c))
}

// Request is what the proxy knows about a connection when it asks for a
// decision.
type Request struct {
	// Name is the normalised name from SNI or Host, or "" if there is none.
	// When set, Literal is ignored.
	Name string
	// Literal is the IP literal from Host or SNI, or, for TLS without SNI,
	// OrigDst.Addr().
	Literal netip.Addr
	// OrigDst is where the client's bytes were going (the TPROXY local
	// address); its port is the destination port. Required.
	OrigDst netip.AddrPort
	// Resolved holds the addresses egressfw's resolver returned for Name.
	Resolved []netip.Addr
	// Aliases are the CNAME targets the resolver followed from Name to
	// the addresses, in order (normalised like Name). Each is judged
	// against deny_domains as Name is: a chain through a denied name is
	// denied. allow_domains applies to Name alone.
	Aliases []string
}

// Decision is the outcome for one connection or name.
type Decision struct {
	// Allow says whether to let the connection proceed. In report mode it
	// is always true.
	Allow bool
	// Enforced is false in report mode.
	Enforced bool
	// WouldAllow is the verdict the policy reached; equal to Allow when
	// Enforced.
	WouldAllow bool
	// Dial is the address to connect to when Allow is true: a validated
	// address (enforce mode) or the original destination (report mode).
	Dial netip.AddrPort
	// Code is the verdict as a metrics label.
	Code Code
	// Detail says why, for logs.
	Detail string
}

// Policy applies tenants' rules using a shared Classifier. It is safe for
// concurrent use.
type Policy struct {
	c *Classifier
}

// New returns a Policy that classifies addresses with c.
func New(c *Classifier) *Policy { return &Policy{c: c} }

// Classifier returns the classifier the policy uses, so the daemon can keep
// its host addresses current.
func (p *Policy) Classifier() *Classifier { return p.c }

const (
	detailAllowedOrig  = "allowed: the original destination is one of the name's validated addresses"
	detailAllowedOther = "allowed: the original destination is not one of the name's addresses, dialling a validated address instead"
	detailAllowedLit   = "allowed: public IP literal equal to the original destination"
	detailAllowedName  = "allowed by allow_domains"
)

// CheckName applies deny_domains and allow_domains to name before it is
// resolved, so that denied names are never sent to DNS. Dial is unset.
func (p *Policy) CheckName(t *CompiledTenant, name string) Decision {
	if t == nil {
		return noTenant()
	}
	d := t.checkName(name)
	if d.Code == CodeAllowed {
		d.Allow, d.Detail = true, detailAllowedName
	}
	return t.finish(d, netip.AddrPort{})
}

func (t *CompiledTenant) checkName(name string) Decision {
	if name == "" {
		return Decision{Code: CodeNoName, Detail: "no host name to check"}
	}
	if pat, ok := t.deny.match(name); ok {
		return Decision{Code: CodeDeniedDomain, Detail: fmt.Sprintf("name %q is in deny_domains (%q)", name, pat)}
	}
	if _, ok := t.allow.match(name); !ok {
		return Decision{Code: CodeNotAllowedDomain, Detail: fmt.Sprintf("name %q is not in allow_domains", name)}
	}
	return Decision{Code: CodeAllowed}
}

// Decide makes the full decision for a connection: the name rules, then
// every resolved address (or the IP literal), then the address to dial.
func (p *Policy) Decide(t *CompiledTenant, req Request) Decision {
	if t == nil {
		return noTenant()
	}
	var d Decision
	switch {
	case req.Name != "":
		d = p.decideName(t, req)
	case req.Literal.IsValid():
		d = p.decideLiteral(t, req)
	default:
		d = Decision{Code: CodeNoName, Detail: "the request carries neither a host name nor an IP literal"}
	}
	return t.finish(d, req.OrigDst)
}

// Deny builds a denial the caller detected itself (for example
// CodeInvalidName when a Host header does not normalise), with the tenant's
// mode applied like any other decision.
func (p *Policy) Deny(t *CompiledTenant, origDst netip.AddrPort, code Code, detail string) Decision {
	if t == nil {
		return noTenant()
	}
	return t.finish(Decision{Code: code, Detail: detail}, origDst)
}

func (p *Policy) decideName(t *CompiledTenant, req Request) Decision {
	if d := t.checkName(req.Name); d.Code != CodeAllowed {
		return d
	}
	for _, alias := range req.Aliases {
		if pat, ok := t.deny.match(alias); ok {
			return Decision{Code: CodeDeniedDomain, Detail: fmt.Sprintf(
				"name %q is an alias (CNAME) of %q, which is in deny_domains (%q)", req.Name, alias, pat)}
		}
	}
	if len(req.Resolved) == 0 {
		return Decision{Code: CodeNoAddresses, Detail: fmt.Sprintf("name %q resolved to no address", req.Name)}
	}
	port := req.OrigDst.Port()
	for _, a := range req.Resolved {
		c := p.c.Classify(a)
		if !c.Internal {
			continue
		}
		switch t.covers(req.Name, a, &c, port) {
		case covered:
			continue
		case coveredPort:
			return Decision{Code: CodeInternalPort, Detail: fmt.Sprintf(
				"name %q resolves to %s, which %s; allow_internal covers it but not port %d",
				req.Name, a, c.Describe(), port)}
		default:
			return Decision{Code: CodeInternalAddress, Detail: fmt.Sprintf(
				"name %q resolves to %s, which %s", req.Name, a, c.Describe())}
		}
	}
	dial, same := chooseDial(req.Resolved, req.OrigDst.Addr().Unmap())
	d := Decision{Allow: true, Code: CodeAllowed, Dial: netip.AddrPortFrom(dial, port), Detail: detailAllowedOther}
	if same {
		d.Detail = detailAllowedOrig
	}
	return d
}

// chooseDial picks the original destination if the name resolved to it,
// else the first address of the same family, else the first address. So a
// name that does not resolve to where the client pointed reaches only what
// the name resolves to.
func chooseDial(resolved []netip.Addr, orig netip.Addr) (netip.Addr, bool) {
	for _, a := range resolved {
		if a.Unmap() == orig {
			return orig, true
		}
	}
	for _, a := range resolved {
		if a.Unmap().Is4() == orig.Is4() {
			return a.Unmap(), false
		}
	}
	return resolved[0].Unmap(), false
}

func (p *Policy) decideLiteral(t *CompiledTenant, req Request) Decision {
	lit := req.Literal
	if !t.allow.any {
		return Decision{Code: CodeLiteralNotAllowed, Detail: fmt.Sprintf(
			"IP literal %s is not allowed: the tenant's allow_domains is not \"*\"", lit)}
	}
	orig := req.OrigDst.Addr().Unmap()
	if lit.Unmap() != orig {
		return Decision{Code: CodeLiteralMismatch, Detail: fmt.Sprintf(
			"IP literal %s does not match original destination %s", lit, orig)}
	}
	port := req.OrigDst.Port()
	if c := p.c.Classify(lit); c.Internal {
		switch t.covers("", lit, &c, port) {
		case covered:
		case coveredPort:
			return Decision{Code: CodeInternalPort, Detail: fmt.Sprintf(
				"IP literal %s; allow_internal covers it but not port %d", c.Reason(), port)}
		default:
			return Decision{Code: CodeInternalAddress, Detail: "IP literal " + c.Reason()}
		}
	}
	return Decision{Allow: true, Code: CodeAllowed, Dial: netip.AddrPortFrom(orig, port), Detail: detailAllowedLit}
}

// finish applies the tenant's mode: in report mode the connection goes
// through to its original destination whatever the verdict.
func (t *CompiledTenant) finish(d Decision, origDst netip.AddrPort) Decision {
	d.WouldAllow = d.Allow
	if t.mode == Report {
		d.Allow, d.Enforced = true, false
		d.Dial = netip.AddrPortFrom(origDst.Addr().Unmap(), origDst.Port())
		return d
	}
	d.Enforced = true
	if !d.Allow {
		d.Dial = netip.AddrPort{}
	}
	return d
}

func noTenant() Decision {
	return Decision{Enforced: true, Code: CodeNoTenant, Detail: "the connection belongs to no tenant"}
}

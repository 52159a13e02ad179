package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

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
	// Resolved holds the addresses egressfw's resolver returned for Name,
	// for a Policy without a Lookup (which fills them itself).
	Resolved []netip.Addr
	// Aliases are the CNAME targets the resolver followed from Name to
	// the addresses, in order (normalised like Name). Each is judged
	// against deny_domains as Name is: a chain through a denied name is
	// denied. allow_domains applies to Name alone.
	Aliases []string
}

// Policy applies tenants' rules using a shared Classifier. It is safe for
// concurrent use.
type Policy struct {
	c      *Classifier
	lookup Lookup
}

// New returns a Policy that classifies addresses with c and resolves names
// with lookup. With lookup nil, Decide judges a request's Resolved and
// Aliases as the caller found them.
func New(c *Classifier, lookup Lookup) *Policy { return &Policy{c: c, lookup: lookup} }

// Classifier returns the classifier the policy uses, so the daemon can keep
// its host addresses current.
func (p *Policy) Classifier() *Classifier { return p.c }

const (
	detailAllowedOrig  = "allowed: the original destination is one of the name's validated addresses"
	detailAllowedOther = "allowed: the original destination is not one of the name's addresses, dialling a validated address instead"
	detailAllowedLit   = "allowed: public IP literal equal to the original destination"
)

// checkName applies deny_domains and allow_domains to a name, before it
// is resolved: a name they refuse is never sent to DNS.
func (t *CompiledTenant) checkName(name string) verdict {
	if name == "" {
		return verdict{code: CodeNoName, detail: "no host name to check"}
	}
	if pat, ok := t.deny.match(name); ok {
		return verdict{code: CodeDeniedDomain, detail: fmt.Sprintf("name %q is in deny_domains (%q)", name, pat)}
	}
	if _, ok := t.allow.match(name); !ok {
		return verdict{code: CodeNotAllowedDomain, detail: fmt.Sprintf("name %q is not in allow_domains", name)}
	}
	return verdict{code: CodeAllowed}
}

// Decide makes the whole decision for a connection: the name rules, then
// the name's lookup (once, and only for a name the rules allow: the
// addresses it returns are the only ones ever dialled), every resolved
// address (or the IP literal), then the address to dial; then the tenant's
// mode.
func (p *Policy) Decide(ctx context.Context, t *CompiledTenant, req Request) Decision {
	if t == nil {
		return noTenant()
	}
	d := Decision{Name: req.Name}
	t.finish(&d, p.verdict(ctx, t, &req, &d.Answer, p.lookup), req.OrigDst)
	return d
}

// verdict is Decide's verdict before the tenant's mode, filling ans; a
// name is looked up with lookup (nil: req's Resolved and Aliases).
func (p *Policy) verdict(ctx context.Context, t *CompiledTenant, req *Request, ans *Answer, lookup Lookup) verdict {
	switch {
	case req.Name != "":
		return p.decideName(ctx, t, req, ans, lookup)
	case req.Literal.IsValid():
		return p.decideLiteral(t, *req)
	}
	return verdict{code: CodeNoName, detail: "the request carries neither a host name nor an IP literal"}
}

// decideName judges a name: its rules, then its lookup with lookup (nil:
// req's Resolved and Aliases) filling ans, then the aliases and addresses
// the lookup found, on req's port (0, a lookup's: any port).
func (p *Policy) decideName(ctx context.Context, t *CompiledTenant, req *Request, ans *Answer, lookup Lookup) verdict {
	if v := t.checkName(req.Name); v.code != CodeAllowed {
		return v // never sent to DNS
	}
	if lookup == nil {
		ans.Addrs, ans.Aliases = req.Resolved, req.Aliases
	} else {
		var err error
		if *ans, err = lookup(ctx, req.Name); err != nil {
			code := CodeDNSFailure
			if le := (*LookupError)(nil); errors.As(err, &le) {
				code = le.Code
			}
			return verdict{code: code, detail: fmt.Sprintf("resolve %q: %v", req.Name, err)}
		}
	}
	if v := t.checkAliases(req.Name, ans.Aliases); v.code != CodeAllowed {
		return v
	}
	if len(ans.Addrs) == 0 {
		return verdict{code: CodeNoAddresses, detail: fmt.Sprintf("name %q resolved to no address", req.Name)}
	}
	port := req.OrigDst.Port()
	for _, a := range ans.Addrs {
		c := p.c.Classify(a)
		if !c.Internal {
			continue
		}
		switch t.covers(req.Name, a, &c, port) {
		case covered:
			continue
		case coveredPort:
			return verdict{code: CodeInternalPort, detail: fmt.Sprintf(
				"name %q resolves to %s, which %s; allow_internal covers it but not port %d",
				req.Name, a, c.Describe(), port)}
		default:
			return verdict{code: CodeInternalAddress, detail: fmt.Sprintf(
				"name %q resolves to %s, which %s", req.Name, a, c.Describe())}
		}
	}
	dial, same := chooseDial(ans.Addrs, req.OrigDst.Addr().Unmap())
	v := verdict{allow: true, code: CodeAllowed, dial: netip.AddrPortFrom(dial, port), detail: detailAllowedOther}
	if same {
		v.detail = detailAllowedOrig
	}
	return v
}

// checkAliases applies deny_domains to the names of a CNAME chain from
// name: a chain through a denied name is denied.
func (t *CompiledTenant) checkAliases(name string, aliases []string) verdict {
	for _, alias := range aliases {
		if pat, ok := t.deny.match(alias); ok {
			return verdict{code: CodeDeniedDomain, detail: fmt.Sprintf(
				"name %q is an alias (CNAME) of %q, which is in deny_domains (%q)", name, alias, pat)}
		}
	}
	return verdict{code: CodeAllowed}
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

func (p *Policy) decideLiteral(t *CompiledTenant, req Request) verdict {
	lit := req.Literal
	if !t.allow.any {
		return verdict{code: CodeLiteralNotAllowed, detail: fmt.Sprintf(
			"IP literal %s is not allowed: the tenant's allow_domains is not \"*\"", lit)}
	}
	orig := req.OrigDst.Addr().Unmap()
	if lit.Unmap() != orig {
		return verdict{code: CodeLiteralMismatch, detail: fmt.Sprintf(
			"IP literal %s does not match original destination %s", lit, orig)}
	}
	port := req.OrigDst.Port()
	if c := p.c.Classify(lit); c.Internal {
		switch t.covers("", lit, &c, port) {
		case covered:
		case coveredPort:
			return verdict{code: CodeInternalPort, detail: fmt.Sprintf(
				"IP literal %s; allow_internal covers it but not port %d", c.Reason(), port)}
		default:
			return verdict{code: CodeInternalAddress, detail: "IP literal " + c.Reason()}
		}
	}
	return verdict{allow: true, code: CodeAllowed, dial: netip.AddrPortFrom(orig, port), detail: detailAllowedLit}
}

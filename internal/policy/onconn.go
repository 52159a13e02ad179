package policy

import (
	"context"
	"fmt"
)

// DecideOn is the decision for a later request on a connection that is
// already connected upstream, to req.OrigDst (the address the connection
// was dialled at, which is what the request would reach): Decide's whole
// decision on the request's name or literal (the name rules, the name's
// lookup through the same resolver and cache, every address), and then
// the connection's address must be one that decision validated: one of
// the name's addresses, or the literal itself. An internal address that
// an allow_internal CIDR entry covers on the connection's port passes for
// any name the rules allow, since the tenant may reach it by any name;
// one covered only through a host entry passes only for that host. No
// address is dialled, and nothing is resolved beyond Decide's one lookup.
func (p *Policy) DecideOn(ctx context.Context, t *CompiledTenant, req Request) Decision {
	return p.decideOn(ctx, t, req, p.lookup)
}

// Recheck judges again, with t, a connection that is open and relaying:
// req is what was judged when it opened, with Resolved and Aliases the
// answer judged then (its name is not looked up again) and OrigDst the
// address the connection is connected to. It is DecideOn's decision on
// that answer: the name rules, every alias and address, and the
// connection's address must be one of the name's (or the literal). A
// reload uses it to find the open connections its config refuses.
func (p *Policy) Recheck(t *CompiledTenant, req Request) Decision {
	return p.decideOn(context.Background(), t, req, nil)
}

func (p *Policy) decideOn(ctx context.Context, t *CompiledTenant, req Request, lookup Lookup) Decision {
	if t == nil {
		return noTenant()
	}
	d := Decision{Name: req.Name}
	v := p.verdict(ctx, t, &req, &d.Answer, lookup)
	if v.allow && req.Name != "" && !p.onConnection(t, req, d.Answer) {
		v = verdict{code: CodeNotOnConnection, detail: fmt.Sprintf(
			"name %q does not resolve to %s, the address this connection is connected to", req.Name, req.OrigDst.Addr())}
	}
	t.finish(&d, v, req.OrigDst)
	return d
}

// onConnection reports whether a name allowed with answer may use the
// connection to req.OrigDst: the address is one of its answer's, or
// allow_internal covers it by CIDR on the port. (A literal is allowed only
// when it is the address: decideLiteral checks it.)
func (p *Policy) onConnection(t *CompiledTenant, req Request, answer Answer) bool {
	up := req.OrigDst.Addr().Unmap()
	for _, a := range answer.Addrs {
		if a.Unmap() == up {
			return true
		}
	}
	c := p.c.Classify(up)
	return c.Internal && t.covers("", up, &c, req.OrigDst.Port()) == covered
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/egressfw/egressfw/internal/sni"
)

// judge is the whole verdict on a peeked request whose bytes were going to
// orig: the checks only the data path can make on the request, then the
// policy (the name rules, the name's one lookup, every address, the
// tenant's mode). The data path and Explain both call it.
func judge(ctx context.Context, pol *policy.Policy, t *policy.CompiledTenant, r sni.Result, orig netip.AddrPort) policy.Decision {
	if d, ok := uncheckable(t, r, orig); ok {
		return d
	}
	return pol.Decide(ctx, t, requestOf(r, orig))
}

// uncheckable is the refusal of a request the policy cannot judge, if r
// is one: CONNECT, the HTTP/2 preface, a Host port that is not the
// connection's.
func uncheckable(t *policy.CompiledTenant, r sni.Result, orig netip.AddrPort) (policy.Decision, bool) {
	switch {
	case r.CONNECT:
		return policy.Deny(t, orig, policy.CodeConnectMethod, fmt.Sprintf("CONNECT to %q cannot be checked", r.Host())), true
	case r.H2Preface:
		return policy.Deny(t, orig, policy.CodeH2Preface, "HTTP/2 prior knowledge names no host"), true
	case r.Port != 0 && r.Port != orig.Port():
		return policy.Deny(t, orig, policy.CodePortMismatch,
			fmt.Sprintf("Host port %d does not match destination port %d", r.Port, orig.Port())), true
	}
	return policy.Decision{}, false
}

// requestOf is what the policy judges of r, whose bytes were going to orig.
func requestOf(r sni.Result, orig netip.AddrPort) policy.Request {
	req := policy.Request{OrigDst: orig}
	switch {
	case r.Name != "":
		req.Name = r.Name
	case r.Addr.IsValid():
		req.Literal = r.Addr.Unmap()
	case r.Kind == sni.KindTLS:
		// No SNI: the only destination is where the bytes were going.
		req.Literal = orig.Addr()
	}
	return req
}

// lookupWith is res as the policy's Lookup: the answer, and for a failure
// the DNS code it is.
func lookupWith(res *resolver.Resolver) policy.Lookup {
	return func(ctx context.Context, name string) (policy.Answer, error) {
		return policyAnswer(res.Lookup(ctx, name))
	}
}

func dnsCode(err error) policy.Code {
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return policy.CodeDNSNXDomain
	case errors.Is(err, resolver.ErrNoAddresses):
		return policy.CodeDNSNoAddresses
	case errors.Is(err, resolver.ErrTimeout):
		return policy.CodeDNSTimeout
	}
	return policy.CodeDNSFailure
}

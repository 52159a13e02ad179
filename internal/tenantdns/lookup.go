package tenantdns

import (
	"context"
	"errors"

	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
)

// LookupOf is res as the policy's Lookup, for connections and DNS answers
// alike, so that a name is judged the same for both: the answer, and for
// a failure the DNS code it is.
func LookupOf(res *resolver.Resolver) policy.Lookup {
	return func(ctx context.Context, name string) (policy.Answer, error) {
		return policyAnswer(res.Lookup(ctx, name))
	}
}

// policyAnswer is a lookup's outcome as the policy judges it: the answer,
// and for a failure the DNS code it is.
func policyAnswer(r resolver.Result, err error) (policy.Answer, error) {
	a := policy.Answer{Addrs: r.Addrs, Aliases: r.Aliases, Dropped: r.Dropped, Server: r.Server, Duration: r.Duration}
	if err != nil {
		return a, &policy.LookupError{Code: dnsCode(err), Err: err}
	}
	return a, nil
}

// dnsCode is the policy code of a resolver failure, for a connection's
// verdict and a DNS answer alike.
func dnsCode(err error) policy.Code {
	switch {
	case errors.Is(err, resolver.ErrNXDomain), errors.Is(err, resolver.ErrInvalidName):
		return policy.CodeDNSNXDomain
	case errors.Is(err, resolver.ErrNoAddresses):
		return policy.CodeDNSNoAddresses
	case errors.Is(err, resolver.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return policy.CodeDNSTimeout
	}
	return policy.CodeDNSFailure
}

package policy

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Decision is the verdict on one connection, and what it was reached on:
// the one value that goes from Decide (or Deny) to the connection's log
// line, its metrics, the answer a refused tenant gets and `egressfw
// explain`.
type Decision struct {
	// Allow says whether to let the connection proceed. In report mode it
	// is true for every Reportable code.
	Allow bool
	// Enforced is false when report mode let the connection through.
	Enforced bool
	// WouldAllow is the verdict the policy reached; equal to Allow when
	// Enforced.
	WouldAllow bool
	// Dial is the address to connect to when Allow is true: a validated
	// address (enforce mode) or the original destination (report mode).
	// Targets lists every address the connection may try.
	Dial netip.AddrPort
	// Code is the verdict as a metrics label.
	Code Code
	// Detail says why, for logs.
	Detail string
	// Name is the name judged; "" for an IP literal or no name.
	Name string
	// Answer is what the lookup of Name found; empty when there was none
	// (a literal, a name the rules refused before its lookup).
	Answer Answer
}

// Answer is what a lookup found for a name.
type Answer struct {
	// Addrs are the name's addresses, at most dns.max_addresses of them;
	// Decide validates every one.
	Addrs []netip.Addr
	// Aliases are the CNAME targets followed from the name to Addrs, in
	// order; Decide judges each against deny_domains.
	Aliases []string
	// Dropped counts the addresses of the answer beyond dns.max_addresses.
	Dropped int
	// Server is the DNS server that answered.
	Server string
	// Duration is how long the lookup took.
	Duration time.Duration
}

// Lookup resolves a name for Decide, which calls it only for a name the
// tenant's name rules allow, and at most once per decision. A failure is an
// error wrapping a *LookupError that says which (else CodeDNSFailure).
type Lookup func(ctx context.Context, name string) (Answer, error)

// LookupError is a failed lookup: Code is CodeDNSNXDomain,
// CodeDNSNoAddresses, CodeDNSTimeout or CodeDNSFailure.
type LookupError struct {
	Code Code
	Err  error
}

func (e *LookupError) Error() string { return e.Err.Error() }
func (e *LookupError) Unwrap() error { return e.Err }

// Deny is the decision for a refusal or failure the caller reached itself:
// a request it cannot judge (CodeConnectMethod, ...), a connection it could
// not read or admit (CodePeekTimeout, CodeOverLimit, ...) or an allowed
// one it could not connect upstream (CodeUpstreamRefused, ...). The
// tenant's mode applies as in Decide: report mode lets through what
// Code.Reportable says it may. With no tenant (t nil) the code is
// CodeNoTenant; detail, if not empty, says why.
func Deny(t *CompiledTenant, origDst netip.AddrPort, code Code, detail string) Decision {
	if t == nil {
		d := noTenant()
		if detail != "" {
			d.Detail = detail
		}
		return d
	}
	var d Decision
	t.finish(&d, verdict{code: code, detail: detail}, origDst)
	return d
}

// verdict is what the rules reached, before the tenant's mode.
type verdict struct {
	allow  bool
	code   Code
	dial   netip.AddrPort // when allow
	detail string
}

// finish makes v d's verdict and applies the tenant's mode, the one place
// it is applied: in report mode a Reportable verdict lets the connection
// through to its original destination.
func (t *CompiledTenant) finish(d *Decision, v verdict, origDst netip.AddrPort) {
	d.Code, d.Detail, d.WouldAllow = v.code, v.detail, v.allow
	if t.mode == Report && v.code.Reportable() {
		d.Allow, d.Enforced = true, false
		d.Dial = netip.AddrPortFrom(origDst.Addr().Unmap(), origDst.Port())
		return
	}
	d.Allow, d.Enforced = v.allow, true
	if v.allow {
		d.Dial = v.dial
	}
}

func noTenant() Decision {
	return Decision{Enforced: true, Code: CodeNoTenant, Detail: "the connection belongs to no tenant"}
}

// Outcome is the decision as logged and counted: "allow", "would_deny"
// (report mode let through what enforce mode refuses), "deny", or "error"
// (an allowed destination that could not be reached).
func (d *Decision) Outcome() string {
	switch {
	case d.Code.IsUpstream():
		return "error"
	case d.Allow && d.WouldAllow:
		return "allow"
	case d.Allow:
		return "would_deny"
	}
	return "deny"
}

// Targets lists the addresses an allowed connection may be dialled at, in
// order: Dial, then, when enforced, every other address of the answer on
// Dial's port (all were validated). It is nil when the connection is not
// allowed.
func (d *Decision) Targets() []netip.AddrPort {
	if !d.Allow {
		return nil
	}
	out := []netip.AddrPort{d.Dial}
	if d.Enforced {
		for _, a := range d.Answer.Addrs {
			if ap := netip.AddrPortFrom(a, d.Dial.Port()); ap != d.Dial {
				out = append(out, ap)
			}
		}
	}
	return out
}

// TenantMessage says why the connection was refused, for the tenant
// (listener.deny_detail = "full"): the destination and the kind of
// refusal, never an address a name resolved to, which is for the
// operator's log.
func (d *Decision) TenantMessage() string {
	dest := "the destination"
	if d.Name != "" {
		dest = fmt.Sprintf("%q", d.Name)
	}
	switch c := d.Code; {
	case c == CodeDeniedDomain:
		return dest + " is on the deny list"
	case c == CodeNotAllowedDomain:
		return dest + " is not on the allow list"
	case c == CodeInternalAddress, c == CodeInternalPort:
		return dest + " is an internal address"
	case c == CodeLiteralNotAllowed:
		return "IP-address destinations are not allowed for this tenant"
	case c == CodeLiteralMismatch:
		return "the requested address does not match the connection's destination"
	case c == CodeNoName, c == CodeInvalidName:
		return "the request does not name a valid host"
	case c == CodeConnectMethod:
		return "CONNECT is not allowed"
	case c == CodeH2Preface:
		return "HTTP/2 without TLS is not allowed"
	case c == CodePortMismatch:
		return "the Host port does not match the connection's port"
	case c == CodeQueryType:
		return "this query type is not answered for this tenant"
	case c == CodeNotOnConnection:
		return dest + " is not at the address this connection goes to"
	case c == CodeDNSNXDomain:
		return dest + " does not exist (DNS NXDOMAIN)"
	case c == CodeDNSNoAddresses:
		return dest + " has no addresses in DNS"
	case c == CodeDNSTimeout:
		return dest + " could not be resolved: DNS timed out"
	case c == CodeDNSFailure:
		return dest + " could not be resolved: DNS failure"
	case c.isPeek():
		return "the request could not be read: " + c.String()
	}
	return "access denied (" + d.Code.String() + ")"
}

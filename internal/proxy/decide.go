package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/egressfw/egressfw/internal/sni"
)

// Reasons the data path adds to the policy's codes. Each is a metrics label.
const (
	reasonDNSNXDomain       = "dns_nxdomain"
	reasonDNSNoAddresses    = "dns_no_addresses"
	reasonDNSTimeout        = "dns_timeout"
	reasonDNSFailure        = "dns_failure"
	reasonPortMismatch      = "port_mismatch"
	reasonConnect           = "connect_method"
	reasonH2Preface         = "h2_prior_knowledge"
	reasonPeekTimeout       = "peek_timeout"
	reasonMalformed         = "malformed"
	reasonUnknownProto      = "unknown_protocol"
	reasonUpstreamRefused   = "upstream_refused"
	reasonUpstreamTimeout   = "upstream_timeout"
	reasonUpstreamUnreach   = "upstream_unreachable"
	reasonUpstreamError     = "upstream_error"
	reasonTenantGone        = "tenant_removed"
	reasonClientClosedEarly = "client_closed"
)

// outcome is the verdict on one connection: the policy's decision, or a
// refusal the data path reached itself, with the tenant's mode applied.
type outcome struct {
	allow     bool   // proceed (always true in report mode)
	enforced  bool   // false in report mode
	would     bool   // the verdict reached, before the mode
	reason    string // metrics label
	detail    string // for the log
	tenantMsg string // for the tenant: never an internal address
	dial      []netip.AddrPort
	resolved  []netip.Addr
	aliases   []string // the CNAME chain the resolver followed
	dropped   int      // addresses of the answer beyond dns.max_addresses
	dnsDur    time.Duration
	dnsServer string
}

// refuse builds an outcome for a refusal of the data path's own.
func refuse(mode policy.Mode, orig netip.AddrPort, reason, detail, tenantMsg string) outcome {
	o := outcome{reason: reason, detail: detail, tenantMsg: tenantMsg, enforced: true}
	if mode == policy.Report {
		o.allow, o.enforced, o.dial = true, false, []netip.AddrPort{orig}
	}
	return o
}

// fromPolicy converts a policy decision. An allowed name may be dialled at
// any of its resolved addresses (all were validated), the chosen one first.
func fromPolicy(d policy.Decision, resolved []netip.Addr, name string) outcome {
	o := outcome{allow: d.Allow, enforced: d.Enforced, would: d.WouldAllow, reason: d.Code.String(),
		detail: d.Detail, resolved: resolved}
	if !d.WouldAllow {
		o.tenantMsg = tenantMessage(d.Code, name)
	}
	if !d.Allow {
		return o
	}
	o.dial = []netip.AddrPort{d.Dial}
	if d.Enforced {
		for _, a := range resolved {
			if ap := netip.AddrPortFrom(a, d.Dial.Port()); ap != d.Dial {
				o.dial = append(o.dial, ap)
			}
		}
	}
	return o
}

// tenantMessage says why, for the tenant, without the resolved addresses.
func tenantMessage(c policy.Code, name string) string {
	dest := "the destination"
	if name != "" {
		dest = fmt.Sprintf("%q", name)
	}
	switch c {
	case policy.CodeDeniedDomain:
		return dest + " is on the deny list"
	case policy.CodeNotAllowedDomain:
		return dest + " is not on the allow list"
	case policy.CodeInternalAddress, policy.CodeInternalPort:
		return dest + " is an internal address"
	case policy.CodeLiteralNotAllowed:
		return "IP-address destinations are not allowed for this tenant"
	case policy.CodeLiteralMismatch:
		return "the requested address does not match the connection's destination"
	case policy.CodeNoName, policy.CodeInvalidName:
		return "the request does not name a valid host"
	}
	return "access denied (" + c.String() + ")"
}

// decider is what a decision needs: a policy, a tenant and a resolver.
type decider struct {
	policy   *policy.Policy
	tenant   *policy.CompiledTenant
	resolver *resolver.Resolver
}

// decide runs the whole decision for a peeked request whose bytes were going
// to orig: protocol checks, the name rules, resolution (once: the addresses
// it returns are the only ones ever dialled), and address validation.
func (d decider) decide(ctx context.Context, r sni.Result, orig netip.AddrPort) outcome {
	mode := d.tenant.Mode()
	switch {
	case r.CONNECT:
		return refuse(mode, orig, reasonConnect, fmt.Sprintf("CONNECT to %q cannot be checked", r.Host()), "CONNECT is not allowed")
	case r.H2Preface:
		return refuse(mode, orig, reasonH2Preface, "HTTP/2 prior knowledge names no host", "HTTP/2 without TLS is not allowed")
	case r.Port != 0 && r.Port != orig.Port():
		return refuse(mode, orig, reasonPortMismatch,
			fmt.Sprintf("Host port %d does not match destination port %d", r.Port, orig.Port()),
			"the Host port does not match the connection's port")
	}
	switch {
	case r.Name != "":
		return d.decideName(ctx, r.Name, orig)
	case r.Addr.IsValid():
		return fromPolicy(d.policy.Decide(d.tenant, policy.Request{Literal: r.Addr.Unmap(), OrigDst: orig}), nil, "")
	case r.Kind == sni.KindTLS:
		// No SNI: the only destination is where the bytes were going.
		return fromPolicy(d.policy.Decide(d.tenant, policy.Request{Literal: orig.Addr(), OrigDst: orig}), nil, "")
	}
	return fromPolicy(d.policy.Decide(d.tenant, policy.Request{OrigDst: orig}), nil, "")
}

func (d decider) decideName(ctx context.Context, name string, orig netip.AddrPort) outcome {
	if pre := d.policy.CheckName(d.tenant, name); !pre.WouldAllow {
		pre.Dial = orig
		return fromPolicy(pre, nil, name) // never sent to DNS
	}
	res, err := d.resolver.Lookup(ctx, name)
	if err != nil {
		reason, msg := dnsReason(err)
		o := refuse(d.tenant.Mode(), orig, reason, fmt.Sprintf("resolve %q: %v", name, err), fmt.Sprintf("%q %s", name, msg))
		o.dnsDur = res.Duration
		return o
	}
	o := fromPolicy(d.policy.Decide(d.tenant, policy.Request{Name: name, OrigDst: orig, Resolved: res.Addrs, Aliases: res.Aliases}), res.Addrs, name)
	o.dnsDur, o.dnsServer, o.aliases, o.dropped = res.Duration, res.Server, res.Aliases, res.Dropped
	return o
}

func dnsReason(err error) (reason, tenantMsg string) {
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return reasonDNSNXDomain, "does not exist (DNS NXDOMAIN)"
	case errors.Is(err, resolver.ErrNoAddresses):
		return reasonDNSNoAddresses, "has no addresses in DNS"
	case errors.Is(err, resolver.ErrTimeout):
		return reasonDNSTimeout, "could not be resolved: DNS timed out"
	}
	return reasonDNSFailure, "could not be resolved: DNS failure"
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsfront"
	"github.com/egressfw/egressfw/internal/dnsname"
	"github.com/egressfw/egressfw/internal/httphead"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/egressfw/egressfw/internal/sni"
	"github.com/egressfw/egressfw/internal/tenantdns"
	"github.com/miekg/dns"
)

// ErrUsage marks an explain request that is malformed (bad target, unknown
// tenant), as opposed to a destination that is denied.
var ErrUsage = errors.New("usage")

// Explanation is the dry run of `egressfw explain`: the request it
// simulated and the data path's verdict on it.
type Explanation struct {
	Tenant   string
	Target   string
	Host     string // normalised name or IP literal
	Port     uint16
	OrigDst  netip.AddrPort // the destination the simulated client connected to
	Decision policy.Decision
}

// Explain resolves target with the configured DNS and decides it for tenant
// exactly as the data path would. target is a URL (http://, https://) or
// HOST:PORT. dst simulates where the client's bytes were going; empty means
// the first address the name resolves to (or the IP literal).
func Explain(ctx context.Context, cfg *config.Config, tenant, target, dst string) (Explanation, error) {
	ex := Explanation{Tenant: tenant, Target: target}
	r, port, err := parseTarget(target)
	if err != nil {
		return ex, fmt.Errorf("%w: target %q: %v", ErrUsage, target, err)
	}
	ex.Port = port
	pol, tenants, res, err := newPolicy(cfg, 0, nil)
	if err != nil {
		return ex, err
	}
	ct := tenants[tenant]
	if ct == nil {
		return ex, fmt.Errorf("%w: no tenant %q in the config", ErrUsage, tenant)
	}
	ex.Host = r.Host()
	orig, err := simulatedDst(ctx, res, r, port, dst)
	if err != nil {
		return ex, err
	}
	ex.OrigDst = orig
	ex.Decision = judge(ctx, pol, ct, r, orig)
	return ex, nil
}

// simulatedDst picks the original destination: --dst, else the literal, else
// the name's first address. When the name does not resolve, 0.0.0.0 stands
// in and the decision reports the DNS error.
func simulatedDst(ctx context.Context, res *resolver.Resolver, r sni.Result, port uint16, dst string) (netip.AddrPort, error) {
	if dst != "" {
		a, ok := dnsname.ParseIPLiteral(dst)
		if !ok {
			return netip.AddrPort{}, fmt.Errorf("%w: --dst %q is not an IP address", ErrUsage, dst)
		}
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	if r.Addr.IsValid() {
		return netip.AddrPortFrom(r.Addr.Unmap(), port), nil
	}
	if lr, err := res.Lookup(ctx, r.Name); err == nil && len(lr.Addrs) > 0 {
		return netip.AddrPortFrom(lr.Addrs[0], port), nil
	}
	return netip.AddrPortFrom(netip.IPv4Unspecified(), port), nil
}

// parseTarget reads a URL or HOST:PORT as the request a client would send
// (its protocol, and its host read as the data path reads a Host header:
// httphead.ParseAuthority) and the port it would connect to.
func parseTarget(t string) (r sni.Result, port uint16, err error) {
	authority := t
	if strings.Contains(t, "://") {
		u, err := url.Parse(t)
		if err != nil {
			return r, 0, err
		}
		switch u.Scheme {
		case "https":
			r.Kind, port = sni.KindTLS, 443
		case "http":
			r.Kind, port = sni.KindHTTP, 80
		default:
			return r, 0, fmt.Errorf("scheme %q: want http or https", u.Scheme)
		}
		authority = u.Host
	}
	name, addr, p, err := httphead.ParseAuthority(authority)
	if err != nil {
		return r, 0, err
	}
	r.Name, r.Addr = name, addr
	switch {
	case p != 0:
		port = p
	case r.Kind == sni.KindUnknown:
		return r, 0, fmt.Errorf("want a URL or HOST:PORT")
	}
	if r.Kind == sni.KindUnknown { // HOST:PORT: TLS, but HTTP on port 80
		r.Kind = sni.KindTLS
		if port == 80 {
			r.Kind = sni.KindHTTP
		}
	}
	return r, port, nil
}

// LookupExplanation is the dry run of `egressfw explain --dns`: what a
// tenant's DNS query would be answered, and why.
type LookupExplanation struct {
	Tenant string
	Name   string // normalised
	Type   uint16
	// Rcode is the response code the tenant would get ("NOERROR",
	// "NXDOMAIN", "REFUSED", "SERVFAIL").
	Rcode string
	// Reason is the answer's reason code: the decision's, or the
	// resolver's failure (dns_failure, dns_timeout) for a question of an
	// allowed name the upstream did not answer.
	Reason string
	// Records are the answer section, after stripping.
	Records  []dns.RR
	Stripped dnsfront.Stripped
	// Tell is the Extended DNS Error text (listener.deny_detail = "full").
	Tell string
	// Logged says the query would be logged as a refusal (or, in report
	// mode, as what enforce mode would refuse).
	Logged   bool
	Decision policy.Decision
}

// ExplainLookup answers a tenant's DNS query of qtype about name with the
// configured DNS, exactly as the tenant's DNS listener would.
func ExplainLookup(ctx context.Context, cfg *config.Config, tenant, name string, qtype uint16) (LookupExplanation, error) {
	ex := LookupExplanation{Tenant: tenant, Type: qtype}
	n, err := dnsname.Normalize(name)
	if err != nil {
		return ex, fmt.Errorf("%w: name %q: %v", ErrUsage, name, err)
	}
	ex.Name = n
	i := slices.IndexFunc(cfg.Tenants, func(t config.Tenant) bool { return t.Name == tenant })
	if i < 0 {
		return ex, fmt.Errorf("%w: no tenant %q in the config", ErrUsage, tenant)
	}
	td := tenantdns.New(cfg.Tenants[i])
	if td == nil {
		return ex, fmt.Errorf("%w: tenant %q resolves names itself (dns = %q): its port 53 is allow_direct's", ErrUsage, tenant, config.DNSDirect)
	}
	pol, tenants, res, err := newPolicy(cfg, 0, nil)
	if err != nil {
		return ex, err
	}
	a := td.Answer(ctx, pol, res, tenants[tenant], n, qtype, cfg.Listener.DenyDetail == config.DenyDetailFull)
	ex.Decision, ex.Tell, ex.Logged, ex.Reason = a.Verdict, a.Front.Tell, a.Front.Log, a.Front.Reason
	ex.Rcode = map[dnsfront.Verdict]string{dnsfront.Answer: "NOERROR", dnsfront.NXDomain: "NXDOMAIN",
		dnsfront.Refused: "REFUSED", dnsfront.ServFail: "SERVFAIL"}[a.Front.Verdict]
	if a.Front.Verdict == dnsfront.Answer {
		ex.Records, ex.Stripped = a.Front.Strip.Apply(a.Front.Records)
	}
	return ex, nil
}

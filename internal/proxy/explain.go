package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/dnsname"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/egressfw/egressfw/internal/sni"
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
	host, port, kind, err := parseTarget(target)
	if err != nil {
		return ex, fmt.Errorf("%w: target %q: %v", ErrUsage, target, err)
	}
	ex.Port = port
	pol, tenants, res, err := newPolicy(cfg, 0)
	if err != nil {
		return ex, err
	}
	ct := tenants[tenant]
	if ct == nil {
		return ex, fmt.Errorf("%w: no tenant %q in the config", ErrUsage, tenant)
	}
	r := sni.Result{Kind: kind}
	r.Name, r.Addr, err = dnsname.Host(host)
	if err != nil {
		return ex, fmt.Errorf("%w: host %q: %v", ErrUsage, host, err)
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

// parseTarget splits a URL or HOST:PORT into host, port and protocol kind.
func parseTarget(t string) (host string, port uint16, kind sni.Kind, err error) {
	if strings.Contains(t, "://") {
		u, err := url.Parse(t)
		if err != nil {
			return "", 0, 0, err
		}
		switch u.Scheme {
		case "https":
			kind, port = sni.KindTLS, 443
		case "http":
			kind, port = sni.KindHTTP, 80
		default:
			return "", 0, 0, fmt.Errorf("scheme %q: want http or https", u.Scheme)
		}
		if p := u.Port(); p != "" {
			if port, err = parsePort(p); err != nil {
				return "", 0, 0, err
			}
		}
		return u.Hostname(), port, kind, nil
	}
	h, p, err := net.SplitHostPort(t)
	if err != nil {
		return "", 0, 0, fmt.Errorf("want a URL or HOST:PORT: %v", err)
	}
	if port, err = parsePort(p); err != nil {
		return "", 0, 0, err
	}
	kind = sni.KindTLS
	if port == 80 {
		kind = sni.KindHTTP
	}
	return h, port, kind, nil
}

func parsePort(p string) (uint16, error) {
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q: want 1-65535", p)
	}
	return uint16(n), nil
}

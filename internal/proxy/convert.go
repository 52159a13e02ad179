package proxy

import (
	"fmt"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/policy"
	"github.com/egressfw/egressfw/internal/resolver"
	"github.com/egressfw/egressfw/internal/tenantdns"
	"github.com/egressfw/egressfw/internal/tproxy"
)

// policyTenant converts a validated config tenant for the policy engine.
func policyTenant(t config.Tenant) policy.Tenant {
	pt := policy.Tenant{Name: t.Name, Mode: policy.Enforce, Allow: t.AllowDomains, Deny: t.DenyDomains}
	if t.Mode == config.ModeReport {
		pt.Mode = policy.Report
	}
	for _, e := range t.AllowInternal {
		pt.Internal = append(pt.Internal, policy.InternalRule{Host: e.Host, Prefix: e.CIDR, Ports: e.Ports})
	}
	return pt
}

// newPolicy builds the resolver (mark and stats as in newResolver), the
// classifier and a policy that resolves with that resolver, and compiles
// every tenant.
func newPolicy(cfg *config.Config, mark uint32, stats *resolver.CacheStats) (*policy.Policy, map[string]*policy.CompiledTenant, *resolver.Resolver, error) {
	cl, err := policy.NewClassifier(cfg.Policy.InternalCIDRs, cfg.Policy.PublicCIDRs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("build address classifier: %w", err)
	}
	if err := cl.SetNAT64Prefixes(cfg.Policy.NAT64Prefixes); err != nil {
		return nil, nil, nil, fmt.Errorf("build address classifier: %w", err)
	}
	tenants := make(map[string]*policy.CompiledTenant, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		ct, err := policy.Compile(policyTenant(t))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("compile policy of tenant %q: %w", t.Name, err)
		}
		tenants[t.Name] = ct
	}
	res, err := newResolver(cfg, mark, stats)
	if err != nil {
		return nil, nil, nil, err
	}
	return policy.New(cl, tenantdns.LookupOf(res)), tenants, res, nil
}

// newResolver builds egressfw's resolver; mark (if non-zero) is set on its
// sockets so egressfw's own DNS queries bypass tenant interception; stats
// (if not nil) counts its cache hits and misses.
func newResolver(cfg *config.Config, mark uint32, stats *resolver.CacheStats) (*resolver.Resolver, error) {
	rc := resolver.DefaultConfig()
	rc.Servers = cfg.DNS.Servers
	rc.Timeout = cfg.DNS.Timeout.Duration
	rc.MinTTL = cfg.DNS.MinTTL.Duration
	rc.MaxTTL = cfg.DNS.MaxTTL.Duration
	rc.NegativeTTL = cfg.DNS.NegativeTTL.Duration
	rc.CacheSize = cfg.DNS.CacheSize
	rc.CacheBytes = cfg.DNS.CacheBytes
	rc.MaxAddrs = cfg.DNS.MaxAddrs
	rc.Stats = stats
	if mark != 0 {
		rc.Control = tproxy.MarkControl(mark)
	}
	r, err := resolver.New(rc)
	if err != nil {
		return nil, fmt.Errorf("set up DNS resolver: %w", err)
	}
	return r, nil
}

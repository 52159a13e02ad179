package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/egressfw/egressfw/internal/dnsname"
)

var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// validateTenants checks each tenant and the claims tenants make on shared
// things (names, cgroups, uids and uid ranges), which must not overlap. Patterns and hosts
// are normalised in place so the rest of the program sees canonical names.
func (c *Config) validateTenants(v *validator) {
	if len(c.Tenants) > MaxTenants {
		v.add("tenant", "%d tenants, at most %d are supported", len(c.Tenants), MaxTenants)
	}
	names := map[string]int{}
	var uids []uidClaim
	var cgroups []struct{ path, tenant string }
	fwd := &forwardClaims{}
	for i := range c.Tenants {
		t := &c.Tenants[i]
		key := fmt.Sprintf("tenant[%d]", i)
		if !tenantName.MatchString(t.Name) {
			v.add(key+".name", "%q must be 1-32 of [a-z0-9_-], starting with a letter or digit", t.Name)
		} else {
			key = fmt.Sprintf("tenant %q", t.Name)
			if j, dup := names[t.Name]; dup {
				v.add(key, "name is also used by tenant[%d]", j)
			}
			names[t.Name] = i
		}
		if len(t.Cgroups) == 0 && len(t.UIDs) == 0 && len(t.UIDRanges) == 0 && len(t.Interfaces) == 0 && len(t.SourceCIDRs) == 0 && t.DockerLabels == nil {
			v.add(key, "matches nothing: set cgroups, uids, uid_ranges, interfaces, source_cidrs and/or docker_labels")
		}
		fwd.check(v, key, t)
		for _, cg := range t.Cgroups {
			if !CgroupPathOK(cg) {
				v.add(key+".cgroups", "%q must be a clean path relative to the cgroup2 root, like \"egressfw.slice/x.slice\"", cg)
				continue
			}
			for _, g := range c.Firewall.GuardCgroups {
				if cg == g {
					v.add(key+".cgroups", "%q is a guard cgroup (firewall.guard_cgroups); a tenant must be a cgroup below it", cg)
				}
			}
			for _, o := range cgroups {
				if o.path == cg || strings.HasPrefix(cg, o.path+"/") || strings.HasPrefix(o.path, cg+"/") {
					v.add(key+".cgroups", "%q overlaps %q of tenant %q", cg, o.path, o.tenant)
				}
			}
			cgroups = append(cgroups, struct{ path, tenant string }{cg, t.Name})
		}
		checkUIDs(v, key, t, &uids)
		if t.Mode != ModeEnforce && t.Mode != ModeReport {
			v.add(key+".mode", "%q must be \"enforce\" or \"report\"", t.Mode)
		}
		if t.MaxConnections < 0 {
			v.add(key+".max_connections", "must be >= 0 (0 means limits.max_connections_per_tenant)")
		}
		if t.MaxNewPerSecond < 0 || t.MaxNewPerSecond > MaxNewPerSecond {
			v.add(key+".max_new_per_second", "%d is out of range [0, %d] (0 means limits.max_new_per_second)", t.MaxNewPerSecond, MaxNewPerSecond)
		}
		checkTenantDNS(v, key, t)
		normalizePatterns(v, key+".allow_domains", t.AllowDomains)
		normalizePatterns(v, key+".deny_domains", t.DenyDomains)
		c.validateAllowInternal(v, key, t)
		c.validateAllowDirect(v, key, t)
	}
}

func normalizePatterns(v *validator, key string, list []string) {
	for i, p := range list {
		n, err := NormalizePattern(p)
		if err != nil {
			v.add(fmt.Sprintf("%s[%d]", key, i), "%v", err)
			continue
		}
		list[i] = n
	}
}

func (c *Config) validateAllowInternal(v *validator, key string, t *Tenant) {
	for i := range t.AllowInternal {
		e := &t.AllowInternal[i]
		k := fmt.Sprintf("%s.allow_internal[%d]", key, i)
		switch {
		case e.Host != "" && e.CIDR.IsValid():
			v.add(k, "set host or cidr, not both")
		case e.Host != "":
			name, addr, err := dnsname.Host(e.Host)
			switch {
			case err != nil:
				v.add(k+".host", "%v", err)
			case addr.IsValid():
				v.add(k+".host", "%q is an IP address; use cidr = \"%s/%d\"", e.Host, addr, addr.BitLen())
			default:
				e.Host = name
			}
		case e.CIDR.IsValid():
			checkPrefix(v, k+".cidr", e.CIDR)
		default:
			v.add(k, "set host or cidr")
		}
		for _, p := range e.Ports {
			if !slices.Contains(c.Listener.InterceptPorts, p) {
				v.add(k+".ports", "port %d is not in listener.intercept_ports %v, so the listener never sees it; use allow_direct to bypass the listener", p, c.Listener.InterceptPorts)
			}
		}
	}
}

func (c *Config) validateAllowDirect(v *validator, key string, t *Tenant) {
	for i, e := range t.AllowDirect {
		k := fmt.Sprintf("%s.allow_direct[%d]", key, i)
		if !e.CIDR.IsValid() {
			v.add(k+".cidr", "required: the destination block, like \"127.0.0.53/32\"")
		} else {
			checkPrefix(v, k+".cidr", e.CIDR)
		}
		if e.Protocol != "" && e.Protocol != "tcp" && e.Protocol != "udp" {
			v.add(k+".protocol", "%q must be \"tcp\", \"udp\" or unset (both)", e.Protocol)
		}
		for _, p := range e.Ports {
			switch {
			case p == 0:
				v.add(k+".ports", "port 0 is not a port")
			case e.Protocol != "udp" && slices.Contains(c.Listener.InterceptPorts, p):
				v.add(k+".ports", "TCP port %d is intercepted and always goes through the listener; use allow_internal, or protocol = \"udp\"", p)
			}
		}
	}
}

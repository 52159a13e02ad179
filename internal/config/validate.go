package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/egressfw/egressfw/internal/dnsname"
)

// MaxNewPerSecond bounds limits.max_new_per_second and a tenant's own: far
// above what one listener accepts, so a larger value would mean nothing.
const MaxNewPerSecond = 1000000

// MaxTenants bounds the tenant count: each tenant has a conntrack-mark slot
// and a listener port of its own.
const MaxTenants = 4000

// Validate checks the whole config and returns every problem found, joined;
// each error names the key (and the tenant) and says what is wrong.
func (c *Config) Validate() error {
	v := &validator{}
	c.validateListener(v)
	c.validateDNS(v)
	c.validatePolicy(v)
	c.validateFirewall(v)
	c.validateLimits(v)
	c.validateTenants(v)
	c.validateDocker(v)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) positive(key string, d Duration, max time.Duration) {
	if d.Duration <= 0 || d.Duration > max {
		v.add(key, "%s is out of range (0, %s]", d.Duration, max)
	}
}

func (c *Config) validateListener(v *validator) {
	l := c.Listener
	if l.Port == 0 {
		v.add("listener.port", "must be 1-65535")
	}
	if l.DNSPort == 0 {
		v.add("listener.dns_port", "must be 1-65535")
	}
	if len(l.InterceptPorts) == 0 {
		v.add("listener.intercept_ports", "must name at least one port")
	}
	seen := map[uint16]bool{}
	for _, p := range l.InterceptPorts {
		switch {
		case p == 0:
			v.add("listener.intercept_ports", "port 0 is not a port")
		case seen[p]:
			v.add("listener.intercept_ports", "port %d is listed twice", p)
		case p == 53:
			v.add("listener.intercept_ports", "port 53 is DNS, not HTTP(S): egressfw answers tenants' DNS itself (a tenant's dns)")
		}
		seen[p] = true
	}
	c.validateSlots(v)
	v.positive("listener.peek_timeout", l.PeekTimeout, time.Minute)
	v.positive("listener.connect_timeout", l.ConnectTimeout, time.Minute)
	if l.MaxConnectAttempts < 1 || l.MaxConnectAttempts > 16 {
		v.add("listener.max_connect_attempts", "%d is out of range [1, 16]", l.MaxConnectAttempts)
	}
	v.positive("listener.idle_timeout", l.IdleTimeout, 24*time.Hour)
	if l.ShutdownGrace.Duration < 0 || l.ShutdownGrace.Duration > time.Hour {
		v.add("listener.shutdown_grace", "%s is out of range [0, 1h]", l.ShutdownGrace.Duration)
	}
	// Caps on what one connection may make egressfw read before a name is
	// known: post-quantum and ECH ClientHellos are 1.5-2 KiB; nginx refuses
	// request heads over 32 KiB by default, Node.js over 16 KiB.
	if l.MaxClientHello < 512 || l.MaxClientHello > 16<<10 {
		v.add("listener.max_client_hello", "%d is out of range [512, 16384]", l.MaxClientHello)
	}
	if l.MaxHTTPHeader < 512 || l.MaxHTTPHeader > 64<<10 {
		v.add("listener.max_http_header", "%d is out of range [512, 65536]", l.MaxHTTPHeader)
	}
	if l.DenyDetail != DenyDetailMinimal && l.DenyDetail != DenyDetailFull {
		v.add("listener.deny_detail", "%q must be %q or %q", l.DenyDetail, DenyDetailMinimal, DenyDetailFull)
	}
}

// validateSlots checks the listener ports of a fresh start, which gives the
// tenants slots 1..N. Reloads keep a tenant's slot, so the slots in use can
// go higher: the daemon checks every slot it keeps or assigns with the same
// SlotOf (internal/daemon, slotTable.plan).
func (c *Config) validateSlots(v *validator) {
	l := &c.Listener
	n := max(len(c.Tenants), 1)
	for id := uint32(1); l.Port != 0 && l.DNSPort != 0 && id <= uint32(n); id++ {
		_, err := l.SlotOf(id)
		port, dns := int(l.Port)+int(id)-1, int(l.DNSPort)+int(id)-1
		switch {
		case errors.Is(err, ErrPortPastMax) && port > 65535:
			v.add("listener.port", "%d tenants need ports %d-%d, past 65535", len(c.Tenants), l.Port, int(l.Port)+n-1)
			return
		case errors.Is(err, ErrPortPastMax):
			v.add("listener.dns_port", "%d tenants need DNS ports %d-%d, past 65535", len(c.Tenants), l.DNSPort, int(l.DNSPort)+n-1)
			return
		case errors.Is(err, ErrPortIntercepted) && dns == 53:
			v.add("listener.dns_port", "the DNS ports of %d tenants, %d-%d, include 53", len(c.Tenants), l.DNSPort, int(l.DNSPort)+n-1)
		case errors.Is(err, ErrPortIntercepted) && slices.Contains(l.InterceptPorts, uint16(port)):
			v.add("listener.intercept_ports", "port %d is one of the listener's own ports", port)
		case errors.Is(err, ErrPortIntercepted):
			v.add("listener.intercept_ports", "port %d is one of the listener's own DNS ports", dns)
		case errors.Is(err, ErrPortsOverlap):
			v.add("listener.dns_port", "the DNS ports of %d tenants, %d-%d, overlap the listener ports %d-%d",
				len(c.Tenants), l.DNSPort, int(l.DNSPort)+n-1, l.Port, int(l.Port)+n-1)
			return
		}
	}
}

func (c *Config) validateDNS(v *validator) {
	d := c.DNS
	for i, s := range d.Servers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Port() == 0 {
			v.add(fmt.Sprintf("dns.servers[%d]", i), "%q is not \"ip:port\" (IPv6 as \"[::1]:53\")", s)
		}
	}
	v.positive("dns.timeout", d.Timeout, 30*time.Second)
	if d.MinTTL.Duration < 0 || d.MaxTTL.Duration < d.MinTTL.Duration {
		v.add("dns.min_ttl", "must be >= 0 and <= dns.max_ttl (%s)", d.MaxTTL.Duration)
	}
	if d.NegativeTTL.Duration < 0 {
		v.add("dns.negative_ttl", "must be >= 0")
	}
	if d.CacheSize < 0 {
		v.add("dns.cache_size", "must be >= 0")
	}
	if d.CacheBytes < 64<<10 || d.CacheBytes > 1<<30 {
		v.add("dns.cache_bytes", "%d is out of range [65536, 1073741824]", d.CacheBytes)
	}
	if d.MaxAddrs < 1 || d.MaxAddrs > 256 {
		v.add("dns.max_addresses", "%d is out of range [1, 256]", d.MaxAddrs)
	}
	if c.Metrics.Listen != "" {
		if _, err := netip.ParseAddrPort(c.Metrics.Listen); err != nil {
			v.add("metrics.listen", "%q is not \"ip:port\" or \"\" to disable", c.Metrics.Listen)
		}
	}
	if p := c.Metrics.StatusSocket; p != "" {
		checkFilePath(v, "metrics.status_socket", p)
		if len(p) > maxSocketPath {
			v.add("metrics.status_socket", "%d bytes long; a unix socket path has at most %d", len(p), maxSocketPath)
		}
	}
}

func (c *Config) validatePolicy(v *validator) {
	for key, list := range map[string][]netip.Prefix{
		"policy.internal_cidrs": c.Policy.InternalCIDRs, "policy.public_cidrs": c.Policy.PublicCIDRs,
	} {
		for i, p := range list {
			checkPrefix(v, fmt.Sprintf("%s[%d]", key, i), p)
		}
	}
	for _, p := range c.Policy.InternalCIDRs {
		if slices.Contains(c.Policy.PublicCIDRs, p) {
			v.add("policy.public_cidrs", "%s is also in policy.internal_cidrs", p)
		}
	}
	for i, p := range c.Policy.NAT64Prefixes {
		if err := checkNAT64Prefix(p); err != "" {
			v.add(fmt.Sprintf("policy.nat64_prefixes[%d]", i), "%s", err)
		}
	}
}

// checkNAT64Prefix says why p cannot be a site NAT64 prefix (policy repeats
// the check when the classifier is built; this one names the key).
func checkNAT64Prefix(p netip.Prefix) string {
	wellKnown := []netip.Prefix{netip.MustParsePrefix("::/96"), netip.MustParsePrefix("::ffff:0:0/96"),
		netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("2002::/16")}
	switch {
	case !p.IsValid():
		return "missing or invalid CIDR"
	case !p.Addr().Is6():
		return fmt.Sprintf("%s is not an IPv6 prefix", p)
	case p.Addr().Zone() != "":
		return fmt.Sprintf("%s: a CIDR has no zone", p)
	case p.Bits() != 96:
		return fmt.Sprintf("%s is a /%d; a NAT64 prefix here is a /96 (the IPv4 address in the last 32 bits)", p, p.Bits())
	case p != p.Masked():
		return fmt.Sprintf("%s has host bits set; did you mean %s?", p, p.Masked())
	}
	for _, w := range wellKnown {
		if w.Overlaps(p) {
			return fmt.Sprintf("%s is decoded already (inside %s)", p, w)
		}
	}
	return ""
}

func checkPrefix(v *validator, key string, p netip.Prefix) {
	switch {
	case !p.IsValid():
		v.add(key, "missing or invalid CIDR")
	case p.Addr().Zone() != "":
		v.add(key, "%s: a CIDR has no zone", p)
	case p != p.Masked():
		v.add(key, "%s has host bits set; did you mean %s?", p, p.Masked())
	}
}

func (c *Config) validateFirewall(v *validator) {
	f := c.Firewall
	if f.Table == "" || len(f.Table) > 64 || strings.ContainsFunc(f.Table, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) {
		v.add("firewall.table", "%q must be 1-64 of [a-z0-9_-]", f.Table)
	}
	switch {
	case f.MarkMask == 0:
		v.add("firewall.mark_mask", "must not be 0")
	case f.InterceptMark == 0 || f.InterceptMark&^f.MarkMask != 0:
		v.add("firewall.intercept_mark", "%#x must be non-zero and inside mark_mask %#x", f.InterceptMark, f.MarkMask)
	case f.BypassMark == 0 || f.BypassMark&^f.MarkMask != 0:
		v.add("firewall.bypass_mark", "%#x must be non-zero and inside mark_mask %#x", f.BypassMark, f.MarkMask)
	case f.BypassMark == f.InterceptMark:
		v.add("firewall.bypass_mark", "must differ from intercept_mark")
	}
	if f.CtMarkMask == 0 || f.CtMarkMask&(f.CtMarkMask+1) != 0 {
		v.add("firewall.ctmark_mask", "%#x must be contiguous low bits, like 0xfff", f.CtMarkMask)
	} else if slots := MaxSlots(f.CtMarkMask); slots < uint64(len(c.Tenants)) {
		v.add("firewall.ctmark_mask", "%#x has room for %d tenants, config has %d", f.CtMarkMask, slots, len(c.Tenants))
	}
	if f.RouteTable == 0 || f.RouteTable >= 253 && f.RouteTable <= 255 {
		v.add("firewall.route_table", "%d is reserved; pick another table id", f.RouteTable)
	}
	for i, g := range f.GuardCgroups {
		if !CgroupPathOK(g) {
			v.add(fmt.Sprintf("firewall.guard_cgroups[%d]", i), "%q must be a clean path relative to the cgroup2 root, like \"egressfw.slice\"", g)
		}
	}
	checkFilePath(v, "firewall.subuid_file", f.SubUIDFile)
	checkFilePath(v, "firewall.passwd_file", f.PasswdFile)
	if f.RulePriority == 0 || f.RulePriority >= 32766 {
		v.add("firewall.rule_priority", "%d must be 1-32765 (before the main table)", f.RulePriority)
	}
}

// MaxSlots is the number of distinct non-zero values a mask can hold: the
// number of tenant slots a conntrack-mark mask leaves room for.
func MaxSlots(mask uint32) uint64 {
	bits := 0
	for m := mask; m != 0; m &= m - 1 {
		bits++
	}
	return 1<<bits - 1
}

func (c *Config) validateLimits(v *validator) {
	l := c.Limits
	if l.MaxConnections < 1 {
		v.add("limits.max_connections", "must be >= 1")
	}
	if l.MaxConnectionsPerTenant < 1 || l.MaxConnectionsPerTenant > l.MaxConnections {
		v.add("limits.max_connections_per_tenant", "must be 1-%d (limits.max_connections)", l.MaxConnections)
	}
	if l.MaxPeeking < 1 {
		v.add("limits.max_peeking", "must be >= 1")
	}
	if l.MaxPeekingPerTenant < 1 || l.MaxPeekingPerTenant > l.MaxPeeking {
		v.add("limits.max_peeking_per_tenant", "must be 1-%d (limits.max_peeking)", l.MaxPeeking)
	}
	if l.MaxNewPerSecond < 0 || l.MaxNewPerSecond > MaxNewPerSecond {
		v.add("limits.max_new_per_second", "%d is out of range [0, %d] (0: unlimited)", l.MaxNewPerSecond, MaxNewPerSecond)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.add("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	if c.Log.DenialBurst < 1 {
		v.add("log.denial_burst", "must be >= 1")
	}
	v.positive("log.denial_window", c.Log.DenialWindow, time.Hour)
}

// CgroupPathOK reports whether p is a clean relative cgroup path.
func CgroupPathOK(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p &&
		!slices.Contains(strings.Split(p, "/"), "..") && !strings.ContainsAny(p, "\x00\n")
}

// NormalizePattern validates a domain pattern ("*", "name", "*.name") and
// returns it normalised.
func NormalizePattern(p string) (string, error) {
	if p == "*" {
		return p, nil
	}
	base, wild := strings.CutPrefix(p, "*.")
	if _, ok := dnsname.ParseIPLiteral(base); ok {
		return "", fmt.Errorf("%q is an IP address, not a domain (use allow_internal cidr, or \"*\" for public literals)", p)
	}
	if strings.Contains(base, "*") {
		return "", fmt.Errorf("%q: '*' is allowed only as \"*\" or a leading \"*.\"", p)
	}
	n, err := dnsname.Normalize(base)
	if err != nil {
		return "", err
	}
	if wild {
		return "*." + n, nil
	}
	return n, nil
}

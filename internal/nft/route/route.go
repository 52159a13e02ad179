package route

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Routing is the policy routing that sends intercept-marked packets to lo:
// per family, `ip rule add fwmark Mark/Mask lookup Table pref Priority` and
// `ip route add local default dev lo table Table`.
type Routing struct {
	Mark, Mask      uint32
	Table, Priority int
}

var families = []int{unix.AF_INET, unix.AF_INET6}

// SkipFamily reports errors that mean the family (IPv6) is disabled here.
func SkipFamily(err error) bool {
	return errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EOPNOTSUPP)
}

// Install adds the local default routes first and the rules second,
// so a marked packet never meets a rule pointing at an empty table (which
// would fall through to the main table and leave the host unproxied).
func Install(h *netlink.Handle, r Routing) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("install routing: find lo: %w", err)
	}
	for _, fam := range families {
		dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
		if fam == unix.AF_INET6 {
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		route := &netlink.Route{Family: fam, Dst: dst, LinkIndex: lo.Attrs().Index, Table: r.Table,
			Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST}
		if err := h.RouteReplace(route); err != nil && !(fam == unix.AF_INET6 && SkipFamily(err)) {
			return fmt.Errorf("install routing: local default route in table %d: %w", r.Table, err)
		}
	}
	for _, fam := range families {
		rules, err := ourRules(h, fam, r)
		if err != nil {
			if fam == unix.AF_INET6 && SkipFamily(err) {
				continue
			}
			return fmt.Errorf("install routing: %w", err)
		}
		found := false
		for _, have := range rules {
			if have.Mark == r.Mark && have.Mask != nil && *have.Mask == r.Mask && !found {
				found = true
				continue
			}
			if err := h.RuleDel(&have); err != nil { // a stale or duplicate rule of ours
				return fmt.Errorf("install routing: delete stale rule %v: %w", have, err)
			}
		}
		if !found {
			if err := h.RuleAdd(newRule(fam, r)); err != nil {
				return fmt.Errorf("install routing: add fwmark rule: %w", err)
			}
		}
	}
	return nil
}

func newRule(fam int, r Routing) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Family = fam
	rule.Mark = r.Mark
	mask := r.Mask
	rule.Mask = &mask
	rule.Table = r.Table
	rule.Priority = r.Priority
	return rule
}

// ourRules lists the rules at our priority that look up our table.
func ourRules(h *netlink.Handle, fam int, r Routing) ([]netlink.Rule, error) {
	all, err := h.RuleList(fam)
	if err != nil {
		return nil, fmt.Errorf("list ip rules: %w", err)
	}
	var out []netlink.Rule
	for _, rule := range all {
		if rule.Priority == r.Priority && rule.Table == r.Table {
			out = append(out, rule)
		}
	}
	return out, nil
}

// Remove deletes our rules first, then every route in our table.
func Remove(h *netlink.Handle, r Routing) error {
	var errs []error
	for _, fam := range families {
		rules, err := ourRules(h, fam, r)
		if err != nil && !SkipFamily(err) {
			errs = append(errs, fmt.Errorf("remove routing: %w", err))
		}
		for _, rule := range rules {
			if err := h.RuleDel(&rule); err != nil {
				errs = append(errs, fmt.Errorf("remove routing: delete rule %v: %w", rule, err))
			}
		}
	}
	for _, fam := range families {
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: r.Table}, netlink.RT_FILTER_TABLE)
		if err != nil && !SkipFamily(err) {
			errs = append(errs, fmt.Errorf("remove routing: list table %d: %w", r.Table, err))
		}
		for _, route := range routes {
			if err := h.RouteDel(&route); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("remove routing: delete route %v: %w", route, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Missing lists what of r is not installed: per family, the fwmark
// rule and the local default route of the route table.
func Missing(h *netlink.Handle, r Routing) ([]string, error) {
	var missing []string
	for _, fam := range families {
		name := map[int]string{unix.AF_INET: "IPv4", unix.AF_INET6: "IPv6"}[fam]
		rules, err := ourRules(h, fam, r)
		if err != nil {
			if fam == unix.AF_INET6 && SkipFamily(err) {
				continue
			}
			return nil, fmt.Errorf("check routing: %w", err)
		}
		if !slices.ContainsFunc(rules, func(have netlink.Rule) bool {
			return have.Mark == r.Mark && have.Mask != nil && *have.Mask == r.Mask
		}) {
			missing = append(missing, fmt.Sprintf("%s rule fwmark %#x/%#x lookup %d", name, r.Mark, r.Mask, r.Table))
		}
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: r.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("check routing: list table %d: %w", r.Table, err)
		}
		if !slices.ContainsFunc(routes, func(rt netlink.Route) bool {
			return rt.Type == unix.RTN_LOCAL && (rt.Dst == nil || isDefault(rt.Dst))
		}) {
			missing = append(missing, fmt.Sprintf("%s local default route in table %d", name, r.Table))
		}
	}
	return missing, nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0 && n.IP.IsUnspecified()
}

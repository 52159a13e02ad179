package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// hostSource lists and follows the host's own addresses in one network
// namespace: ns nil is the daemon's own (the test gives it a namespace of
// its own).
type hostSource struct {
	h  *netlink.Handle
	ns *netns.NsHandle
}

// ownNamespace is the daemon's own network namespace.
func ownNamespace() hostSource { return hostSource{h: &netlink.Handle{}} }

// list returns the host's own addresses and ranges: every address on every
// interface (unmapped, without zones, as single-address prefixes), with the
// interface holding each (what a forwarded tenant's connection was
// REDIRECTed to names the interface it arrived on), and every local and
// anycast route of the kernel's local table, which is how the kernel
// decides what is delivered to this host: it also holds ranges added with
// "ip route add local 10.99.0.0/16 dev lo" (AnyIP) that no interface lists.
func (s hostSource) list() ([]netip.Prefix, map[netip.Addr]string, error) {
	as, err := retryDump(func() ([]netlink.Addr, error) { return s.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, nil, fmt.Errorf("list host addresses: %w", err)
	}
	links, err := retryDump(s.h.LinkList)
	if err != nil {
		return nil, nil, fmt.Errorf("list host interfaces: %w", err)
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return s.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_LOCAL}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list the local routing table: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	out := make([]netip.Prefix, 0, len(as)+len(routes))
	ifaces := make(map[netip.Addr]string, len(as))
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ip = ip.Unmap()
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			if _, dup := ifaces[ip]; !dup {
				ifaces[ip] = names[a.LinkIndex]
			}
		}
	}
	for _, r := range routes {
		if p, ok := localRoute(r); ok {
			out = append(out, p)
		}
	}
	return out, ifaces, nil
}

// localRoute returns the destination of a local-table route the host
// answers for itself (type local or anycast).
func localRoute(r netlink.Route) (netip.Prefix, bool) {
	if r.Table != unix.RT_TABLE_LOCAL || (r.Type != unix.RTN_LOCAL && r.Type != unix.RTN_ANYCAST) || r.Dst == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(r.Dst.IP)
	ones, _ := r.Dst.Mask.Size()
	if !ok {
		return netip.Prefix{}, false
	}
	if ip.Is4In6() || len(r.Dst.IP) == net.IPv4len {
		ip = ip.Unmap()
	}
	p := netip.PrefixFrom(ip, ones)
	return p.Masked(), p.IsValid()
}

// retryDump repeats a netlink dump the kernel interrupted (the table
// changed while it was read), so a half-read list is never used.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 5 {
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

// watchHostAddrs keeps the host's own addresses and local routes current
// from netlink address and route updates until ctx ends, so a tenant naming
// one of them (or a name resolving to one) is refused even if it is in a
// public range: otherwise a tenant could reach the host's own services by
// hairpin. Every update re-lists (a burst of updates once), and so does a
// timer, so a lost notification cannot leave the set stale for long.
func watchHostAddrs(ctx context.Context, src hostSource, set func([]netip.Prefix, map[netip.Addr]string), onErr func(error)) error {
	ranges, ifaces, err := src.list()
	if err != nil {
		return err
	}
	set(ranges, ifaces)
	errCB := func(err error) {
		if ctx.Err() == nil { // closing the subscriptions at shutdown is not an error
			onErr(err)
		}
	}
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 256)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{Namespace: src.ns, ErrorCallback: errCB}); err != nil {
		close(done)
		return fmt.Errorf("subscribe to address updates: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: src.ns, ErrorCallback: errCB}); err != nil {
		close(done)
		return fmt.Errorf("subscribe to route updates: %w", err)
	}
	go func() {
		defer close(done)
		resync := time.NewTicker(time.Minute)
		defer resync.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-addrs:
				if !ok {
					onErr(fmt.Errorf("address update subscription closed; re-listing every minute"))
					addrs = nil // a nil channel never fires: the ticker carries on
				}
			case u, ok := <-routes:
				if !ok {
					onErr(fmt.Errorf("route update subscription closed; re-listing every minute"))
					routes = nil
					continue
				}
				if _, local := localRoute(u.Route); !local {
					continue // other tables change often (Kubernetes, VPNs) and do not matter here
				}
			case <-resync.C:
			}
			drain(addrs)
			drain(routes)
			if ranges, ifaces, err := src.list(); err == nil {
				set(ranges, ifaces)
			} else {
				onErr(err)
			}
		}
	}()
	return nil
}

// drain empties what is queued on c without waiting, so a burst of updates
// costs one re-list.
func drain[T any](c <-chan T) {
	for {
		select {
		case _, ok := <-c:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

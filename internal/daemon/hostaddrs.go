package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// listHostAddrs returns every address on every interface of this network
// namespace, unmapped and without zones, and the interface holding each
// (what a forwarded tenant's connection was REDIRECTed to names the
// interface it arrived on).
func listHostAddrs() ([]netip.Addr, map[netip.Addr]string, error) {
	as, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("list host addresses: %w", err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list host interfaces: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	out := make([]netip.Addr, 0, len(as))
	ifaces := make(map[netip.Addr]string, len(as))
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
			if _, dup := ifaces[ip.Unmap()]; !dup {
				ifaces[ip.Unmap()] = names[a.LinkIndex]
			}
		}
	}
	return out, ifaces, nil
}

// watchHostAddrs keeps the host's own addresses current from netlink address
// updates until ctx ends, so a tenant naming one of them (or a name resolving
// to one) is refused even if it is in a public range: otherwise a tenant
// could reach the host's own services by hairpin. Every update re-lists, so
// a lost notification cannot leave the set stale for long.
func watchHostAddrs(ctx context.Context, set func([]netip.Addr, map[netip.Addr]string), onErr func(error)) error {
	addrs, ifaces, err := listHostAddrs()
	if err != nil {
		return err
	}
	set(addrs, ifaces)
	updates := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			if ctx.Err() == nil { // closing the subscription at shutdown is not an error
				onErr(err)
			}
		},
	}); err != nil {
		return fmt.Errorf("subscribe to address updates: %w", err)
	}
	go func() {
		defer close(done)
		resync := time.NewTicker(time.Minute)
		defer resync.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-updates:
				if !ok {
					onErr(fmt.Errorf("address update subscription closed; re-listing every minute"))
					updates = nil // a nil channel never fires: the ticker carries on
				}
			case <-resync.C:
			}
			if addrs, ifaces, err := listHostAddrs(); err == nil {
				set(addrs, ifaces)
			} else {
				onErr(err)
			}
		}
	}()
	return nil
}

package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// listHostAddrs returns every address on every interface of this network
// namespace, unmapped and without zones.
func listHostAddrs() ([]netip.Addr, error) {
	as, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// watchHostAddrs keeps the host's own addresses current from netlink address
// updates until ctx ends, so a tenant naming one of them (or a name resolving
// to one) is refused even if it is in a public range: otherwise a tenant
// could reach the host's own services by hairpin. Every update re-lists, so
// a lost notification cannot leave the set stale for long.
func watchHostAddrs(ctx context.Context, set func([]netip.Addr), onErr func(error)) error {
	addrs, err := listHostAddrs()
	if err != nil {
		return err
	}
	set(addrs)
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
			if addrs, err := listHostAddrs(); err == nil {
				set(addrs)
			} else {
				onErr(err)
			}
		}
	}()
	return nil
}

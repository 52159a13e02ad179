package docker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Ports finds the bridge ports of a container's endpoints and reports
// deleted ports. The follower calls it from several goroutines.
type Ports interface {
	// Find sets Port and Bridge of each endpoint of the container whose
	// network namespace is at sandboxKey (or, failing that, is process
	// pid's); endpoints without a bridge port keep 0.
	Find(sandboxKey string, pid int, eps []Endpoint) error
	// Gone calls f with the ifindex of each link deleted from now on,
	// until ctx ends.
	Gone(ctx context.Context, f func(ifindex int)) error
}

// HostPorts finds ports with rtnetlink, from the host's side only. The
// kernel names the network namespace of a veth's peer by an id local to
// the host's namespace (IFLA_LINK_NETNSID); the container's namespace gets
// its id from the engine's sandbox path (or the container's first process),
// and its bridge ports are the veths whose peer is in it and whose master
// is a bridge. An endpoint's port is the one whose bridge has an address
// in a subnet holding the endpoint's address. Nothing inside the
// container is read: a container can rename, re-address or re-MAC its own
// interfaces, not the host's view of them.
//
// Listing the host's links costs O(links), so the list is kept between
// reads: a port found in it is checked against the kernel before it is
// used (it exists, is a veth, its peer is in the container's namespace,
// its master is a bridge), and the list is read again when it yields no
// port for an endpoint. A kept list can therefore only cost a second
// read, never a wrong port; reading 1,000 containers lists the links a
// few times instead of 1,000.
type HostPorts struct {
	h  *netlink.Handle
	ns netns.NsHandle // where the bridges are; netns.None(): the caller's

	mu    sync.Mutex
	links []netlink.Link // the last list, nil before the first
}

// NewHostPorts returns the Ports of the network namespace open at nsFd, or
// of the caller's namespace if nsFd is negative (the fd may be closed
// afterwards).
func NewHostPorts(nsFd int) (*HostPorts, error) {
	ns := netns.None()
	var h *netlink.Handle
	var err error
	if nsFd >= 0 {
		fd, derr := unix.FcntlInt(uintptr(nsFd), unix.F_DUPFD_CLOEXEC, 0) // kept for Gone
		if derr != nil {
			return nil, fmt.Errorf("bridge ports: %w", derr)
		}
		ns = netns.NsHandle(fd)
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		if ns.IsOpen() {
			ns.Close()
		}
		return nil, fmt.Errorf("bridge ports: open rtnetlink: %w", err)
	}
	return &HostPorts{h: h, ns: ns}, nil
}

// Close releases the netlink socket.
func (p *HostPorts) Close() {
	p.h.Close()
	if p.ns.IsOpen() {
		p.ns.Close()
	}
}

// nsid is the id the host's namespace gives the container's.
func (p *HostPorts) nsid(sandboxKey string, pid int) (int, error) {
	id, err := -1, errors.New("no sandbox path or process")
	if sandboxKey != "" {
		var f *os.File
		if f, err = os.Open(sandboxKey); err == nil {
			id, err = p.h.GetNetNsIdByFd(int(f.Fd()))
			f.Close()
		}
	}
	if err != nil && pid > 0 { // no access to the engine's run directory
		id, err = p.h.GetNetNsIdByPid(pid)
	}
	if err != nil {
		return -1, fmt.Errorf("network namespace id: %w", err)
	}
	return id, nil
}

// Find implements Ports.
func (p *HostPorts) Find(sandboxKey string, pid int, eps []Endpoint) error {
	id, err := p.nsid(sandboxKey, pid)
	if err != nil {
		return err
	}
	fresh := false
	if id < 0 { // ids are given on demand, and listing a veth gives its peer's: list, ask again
		if _, err := p.list(true); err != nil {
			return err
		}
		fresh = true
		if id, err = p.nsid(sandboxKey, pid); err != nil || id < 0 {
			return fmt.Errorf("network namespace has no id in the host's (%v)", err)
		}
	}
	links, err := p.list(false)
	if err != nil {
		return err
	}
	if p.match(links, id, eps) || fresh {
		return nil
	}
	if links, err = p.list(true); err != nil { // a port the kept list lacks: a new veth
		return err
	}
	p.match(links, id, eps)
	return nil
}

// list returns the host's links: the kept list, or (fresh, or none kept)
// a new one.
func (p *HostPorts) list(fresh bool) ([]netlink.Link, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.links == nil || fresh {
		links, err := p.h.LinkList()
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		p.links = links
	}
	return p.links, nil
}

// match sets Port and Bridge of each endpoint from links, each port
// checked against the kernel (see verified), and reports whether every
// endpoint got one.
func (p *HostPorts) match(links []netlink.Link, id int, eps []Endpoint) bool {
	byIndex := map[int]netlink.Link{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	var ports []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if l.Type() == "veth" && a.NetNsID == id && a.MasterIndex != 0 && byIndex[a.MasterIndex] != nil &&
			byIndex[a.MasterIndex].Type() == "bridge" {
			ports = append(ports, l)
		}
	}
	all := true
	for i := range eps {
		eps[i].Port, eps[i].Bridge = 0, 0
		var match []netlink.Link
		for _, l := range ports {
			if p.bridgeHolds(l.Attrs().MasterIndex, &eps[i]) {
				match = append(match, l)
			}
		}
		if len(match) == 0 && len(ports) == 1 && len(eps) == 1 {
			match = ports // one network, one port: a bridge without a gateway address
		}
		if len(match) == 1 && p.verified(match[0].Attrs().Index, match[0].Attrs().MasterIndex, id) {
			eps[i].Port, eps[i].Bridge = match[0].Attrs().Index, match[0].Attrs().MasterIndex
		} else {
			all = false
		}
	}
	return all
}

// verified reports whether link port is, now, a veth whose peer is in
// namespace id and whose master is bridge, a bridge.
func (p *HostPorts) verified(port, bridge, id int) bool {
	l, err := p.h.LinkByIndex(port)
	if err != nil || l.Type() != "veth" || l.Attrs().NetNsID != id || l.Attrs().MasterIndex != bridge {
		return false
	}
	br, err := p.h.LinkByIndex(bridge)
	return err == nil && br.Type() == "bridge"
}

// bridgeHolds reports whether a subnet of an address of the bridge holds
// the endpoint's IPv4 or IPv6 address.
func (p *HostPorts) bridgeHolds(bridge int, ep *Endpoint) bool {
	addrs, err := p.h.AddrList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: bridge}}, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
		for _, ip := range []netip.Addr{ep.IPv4, ep.IPv6} {
			if ip.IsValid() && a.IPNet != nil && a.IPNet.Contains(ip.AsSlice()) {
				return true
			}
		}
		return false
	})
}

// Gone implements Ports with rtnetlink's link notifications.
func (p *HostPorts) Gone(ctx context.Context, f func(ifindex int)) error {
	ch := make(chan netlink.LinkUpdate, 64)
	ns := p.ns
	if err := netlink.LinkSubscribeWithOptions(ch, ctx.Done(), netlink.LinkSubscribeOptions{Namespace: &ns}); err != nil {
		return fmt.Errorf("follow deleted links: %w", err)
	}
	go func() {
		for u := range ch {
			if u.Header.Type == unix.RTM_DELLINK {
				f(int(u.Index))
			}
		}
	}()
	return nil
}

package dnsfront

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sockets. A tenant's DNS listener is a UDP and a TCP socket on one port,
// both transparent (IP_TRANSPARENT / IPV6_TRANSPARENT, which only a
// process with CAP_NET_ADMIN can set): the nftables rules hand redirected
// DNS only to a transparent socket, so a local user who binds the port
// while egressfw is down receives nothing. The UDP socket does not set
// SO_REUSEADDR, so no other socket can share its port while it is open.
// A wildcard UDP socket (forwarded tenants, whose queries are redirected
// to the address of the interface they arrived on) learns that address
// from IP_PKTINFO and replies from it, so the kernel's NAT maps the reply
// back to the address the tenant queried.

func sockopts(udp, v6 bool) [][3]int {
	var o [][3]int
	if !udp {
		o = append(o, [3]int{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1})
	}
	if !v6 {
		o = append(o, [3]int{unix.SOL_IP, unix.IP_TRANSPARENT, 1})
		if udp {
			o = append(o, [3]int{unix.SOL_IP, unix.IP_PKTINFO, 1})
		}
		return o
	}
	o = append(o, [3]int{unix.SOL_IPV6, unix.IPV6_V6ONLY, 1}, [3]int{unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1})
	if udp {
		o = append(o, [3]int{unix.SOL_IPV6, unix.IPV6_RECVPKTINFO, 1})
	}
	return o
}

// listenConfig sets the options before bind(2).
func listenConfig(udp, v6 bool) net.ListenConfig {
	opts := sockopts(udp, v6)
	return net.ListenConfig{Control: func(_, addr string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range opts {
				if e := unix.SetsockoptInt(int(fd), o[0], o[1], o[2]); e != nil && serr == nil {
					serr = fmt.Errorf("setsockopt %d/%d on %s: %w", o[0], o[1], addr, e)
					if errors.Is(e, unix.EPERM) {
						serr = fmt.Errorf("%w (needs CAP_NET_ADMIN)", serr)
					}
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

// ListenSockets opens the transparent UDP and TCP sockets of one listener
// address (see Server.Listen). It needs CAP_NET_ADMIN.
func ListenSockets(ctx context.Context, addr netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	v6 := addr.Addr().Is6()
	un, tn := "udp4", "tcp4"
	if v6 {
		un, tn = "udp6", "tcp6"
	}
	lc := listenConfig(true, v6)
	pc, err := lc.ListenPacket(ctx, un, addr.String())
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
	}
	lc = listenConfig(false, v6)
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, tn, addr.String())
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("dns listen tcp %s: %w", addr, err)
	}
	return pc.(*net.UDPConn), ln.(*net.TCPListener), nil
}

// pktinfoDst returns the destination address of a received datagram from
// its control messages (IP_PKTINFO ipi_addr, IPV6_PKTINFO ipi6_addr). oob
// is what the kernel wrote into an aligned buffer.
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return netip.Addr{}, false
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.SOL_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			return netip.AddrFrom4([4]byte(data[8:12])), true // ifindex, spec_dst, addr
		case h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			return netip.AddrFrom16([16]byte(data[0:16])).Unmap(), true
		}
		oob = oob[min(unix.CmsgSpace(l-unix.SizeofCmsghdr), len(oob)):]
	}
	return netip.Addr{}, false
}

// pktinfoSrc returns the control message that makes a reply leave from
// src (ipi_spec_dst, ipi6_addr; interface 0: the route decides).
func pktinfoSrc(src netip.Addr) []byte {
	if src.Is4() {
		b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = unix.SOL_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		a := src.As4()
		copy(b[unix.SizeofCmsghdr+4:], a[:])
		return b
	}
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	a := src.As16()
	copy(b[unix.SizeofCmsghdr:], a[:])
	return b
}

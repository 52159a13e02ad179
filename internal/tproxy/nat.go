package tproxy

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h;
// it shares its value with SO_ORIGINAL_DST but lives at level SOL_IPV6.
const ip6tSOOriginalDst = 80

// OriginalDstNAT returns the pre-NAT destination of a connection that reached
// an ordinary listener through a REDIRECT/DNAT rule, as recorded by conntrack
// (getsockopt SO_ORIGINAL_DST, or IP6T_SO_ORIGINAL_DST for IPv6). It fails if
// the connection was not NATed. TPROXY connections need OriginalDst instead.
func OriginalDstNAT(c *net.TCPConn) (netip.AddrPort, error) {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: connection has no TCP local address")
	}
	// The conntrack entry of an IPv4 flow on a dual-stack socket is IPv4.
	level, opt := unix.SOL_IP, unix.SO_ORIGINAL_DST
	if la.AddrPort().Addr().Is6() && !la.AddrPort().Addr().Is4In6() {
		level, opt = unix.SOL_IPV6, ip6tSOOriginalDst
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination of %v: %w", la, err)
	}
	var raw unix.RawSockaddrInet6 // large enough for sockaddr_in too
	size := uint32(unsafe.Sizeof(raw))
	var serr error
	err = rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), uintptr(opt),
			uintptr(unsafe.Pointer(&raw)), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST on %v: %w", la, err)
	}
	return parseRawSockaddr(&raw, size)
}

// parseRawSockaddr decodes the sockaddr_in or sockaddr_in6 the kernel wrote
// into raw.
func parseRawSockaddr(raw *unix.RawSockaddrInet6, size uint32) (netip.AddrPort, error) {
	portOf := func(p uint16) uint16 {
		b := (*[2]byte)(unsafe.Pointer(&p))
		return binary.BigEndian.Uint16(b[:])
	}
	switch raw.Family {
	case unix.AF_INET:
		if size < unix.SizeofSockaddrInet4 {
			break
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), portOf(sa4.Port)), nil
	case unix.AF_INET6:
		if size < unix.SizeofSockaddrInet6 {
			break
		}
		a := netip.AddrFrom16(raw.Addr).Unmap()
		return netip.AddrPortFrom(a, portOf(raw.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("original destination: unexpected sockaddr family %d (length %d)", raw.Family, size)
}

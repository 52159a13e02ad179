package nft

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// Hand-made Ethernet frames for the container identity tests: what a
// container with CAP_NET_RAW (Docker's default) can put on its veth.

// frame is an Ethernet header and payload.
func frame(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	b := append(append(append([]byte{}, dst...), src...), byte(etherType>>8), byte(etherType))
	return append(b, payload...)
}

func checksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, p := range parts {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// l4 is a transport payload of protocol proto with a valid checksum over
// the pseudo-header of src and dst: a TCP SYN or a UDP datagram to port
// 9, an echo request, or raw bytes for any other protocol.
func l4(proto byte, src, dst netip.Addr) []byte {
	var b []byte
	sumAt := -1
	switch proto {
	case unix.IPPROTO_TCP:
		b = make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], 40000)
		binary.BigEndian.PutUint16(b[2:], 9)
		binary.BigEndian.PutUint32(b[4:], 1)
		b[12], b[13] = 5<<4, 0x02 // data offset 5 words, SYN
		binary.BigEndian.PutUint16(b[14:], 65535)
		sumAt = 16
	case unix.IPPROTO_UDP:
		b = make([]byte, 9)
		binary.BigEndian.PutUint16(b[0:], 40000)
		binary.BigEndian.PutUint16(b[2:], 9)
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
		b[8] = 'x'
		sumAt = 6
	case unix.IPPROTO_ICMP:
		b = []byte{8, 0, 0, 0, 0, 1, 0, 1}
		binary.BigEndian.PutUint16(b[2:], checksum(b))
		return b
	case unix.IPPROTO_ICMPV6:
		b = []byte{128, 0, 0, 0, 0, 1, 0, 1}
		sumAt = 2
	default:
		return []byte("egressfw-test")
	}
	if sumAt >= 0 {
		pseudo := append(append(src.AsSlice(), dst.AsSlice()...), 0, proto, byte(len(b)>>8), byte(len(b)))
		if src.Is6() {
			pseudo = append(append(src.AsSlice(), dst.AsSlice()...), 0, 0, 0, 0, 0, 0, 0, proto)
			binary.BigEndian.PutUint32(pseudo[32:], uint32(len(b)))
		}
		binary.BigEndian.PutUint16(b[sumAt:], checksum(pseudo, b))
	}
	return b
}

// ipPacket is an IPv4 or IPv6 packet from src to dst carrying payload of
// protocol proto (hop limit 64, or 255 for neighbour discovery).
func ipPacket(src, dst netip.Addr, proto byte, payload []byte) (etherType uint16, pkt []byte) {
	if src.Is4() {
		h := make([]byte, 20)
		h[0], h[8], h[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
		copy(h[12:], src.AsSlice())
		copy(h[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(h[10:], checksum(h))
		return unix.ETH_P_IP, append(h, payload...)
	}
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, proto, 64
	if proto == unix.IPPROTO_ICMPV6 && len(payload) > 0 && payload[0] >= 133 && payload[0] <= 137 {
		h[7] = 255
	}
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	copy(h[8:], src.AsSlice())
	copy(h[24:], dst.AsSlice())
	return unix.ETH_P_IPV6, append(h, payload...)
}

// arpReply claims that ip is at mac, to the owner of target.
func arpReply(mac net.HardwareAddr, ip netip.Addr, targetMAC net.HardwareAddr, target netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 2}
	b = append(append(append(append(b, mac...), ip.AsSlice()...), targetMAC...), target.AsSlice()...)
	return frame(targetMAC, mac, unix.ETH_P_ARP, b)
}

// neighborAdvert claims (override, unsolicited) that target is at mac.
func neighborAdvert(mac net.HardwareAddr, src, dst, target netip.Addr, dstMAC net.HardwareAddr) []byte {
	b := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // override flag
	b = append(append(b, target.AsSlice()...), 2, 1)
	b = append(b, mac...) // target link-layer address option
	pseudo := append(append(src.AsSlice(), dst.AsSlice()...), 0, 0, 0, 0, 0, 0, 0, unix.IPPROTO_ICMPV6)
	binary.BigEndian.PutUint32(pseudo[32:], uint32(len(b)))
	binary.BigEndian.PutUint16(b[2:], checksum(pseudo, b))
	typ, pkt := ipPacket(src, dst, unix.IPPROTO_ICMPV6, b)
	return frame(dstMAC, mac, typ, pkt)
}

// sendFrames writes raw frames on dev inside ns (AF_PACKET, as a container
// with CAP_NET_RAW can).
func sendFrames(t *testing.T, ns *testNetns, dev string, frames ...[]byte) {
	t.Helper()
	ns.Do(t, func() {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err != nil {
				t.Fatalf("send frame on %s: %v", dev, err)
			}
		}
	})
}

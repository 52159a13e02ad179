package dnsfront

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The original destination. The kernel redirects a tenant's DNS to its
// listener with a nat redirect (DNAT), so the tenant's own destination
// lives only in the flow's conntrack entry. Its reply tuple is what the
// listener sees from its side (source: the listener's local address,
// destination: the tenant), so one ctnetlink GET by that tuple returns the
// entry, whose original tuple holds the destination the tenant chose. The
// same works for UDP and TCP, local (nat output) and forwarded (nat
// prerouting) tenants. It needs CAP_NET_ADMIN, as the listeners do.

// ctnetlink message and attribute numbers (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctMsgGet      = 1 // IPCTNL_MSG_CT_GET
	ctaTupleOrig  = 1 // CTA_TUPLE_ORIG
	ctaTupleReply = 2 // CTA_TUPLE_REPLY
	ctaTupleIP    = 1 // CTA_TUPLE_IP
	ctaTupleProto = 2 // CTA_TUPLE_PROTO
	ctaIPv4Src    = 1 // CTA_IP_V4_SRC, +1: DST
	ctaIPv6Src    = 3 // CTA_IP_V6_SRC, +1: DST
	ctaProtoNum   = 1 // CTA_PROTO_NUM
	ctaProtoSrc   = 2 // CTA_PROTO_SRC_PORT
	ctaProtoDst   = 3 // CTA_PROTO_DST_PORT
)

// conntrack asks the kernel's connection tracking about flows.
type conntrack struct{ c *netlink.Conn }

// dialConntrack opens a ctnetlink socket in the calling thread's network
// namespace.
func dialConntrack() (*conntrack, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("open conntrack netlink: %w", err)
	}
	return &conntrack{c: c}, nil
}

func (ct *conntrack) close() error { return ct.c.Close() }

// origDst returns the original destination of the flow the listener at
// local sees from remote over proto (unix.IPPROTO_UDP or IPPROTO_TCP).
func (ct *conntrack) origDst(proto uint8, local, remote netip.AddrPort) (netip.AddrPort, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if local.Addr().Is4() != remote.Addr().Is4() {
		return netip.AddrPort{}, errors.New("conntrack: mixed address families")
	}
	family, src := uint8(unix.AF_INET), uint16(ctaIPv4Src)
	if local.Addr().Is6() {
		family, src = unix.AF_INET6, ctaIPv6Src
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleReply, func(t *netlink.AttributeEncoder) error {
		t.Nested(ctaTupleIP, func(ip *netlink.AttributeEncoder) error {
			ip.Bytes(src, local.Addr().AsSlice())
			ip.Bytes(src+1, remote.Addr().AsSlice())
			return nil
		})
		t.Nested(ctaTupleProto, func(p *netlink.AttributeEncoder) error {
			p.Uint8(ctaProtoNum, proto)
			p.Bytes(ctaProtoSrc, binary.BigEndian.AppendUint16(nil, local.Port()))
			p.Bytes(ctaProtoDst, binary.BigEndian.AppendUint16(nil, remote.Port()))
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("conntrack request: %w", err)
	}
	req := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ctMsgGet), Flags: netlink.Request},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	msgs, err := ct.c.Execute(req)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("conntrack get %v <- %v: %w", local, remote, err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		if dst, ok := parseOrigDst(m.Data[4:], src+1); ok {
			return dst, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("conntrack get %v <- %v: no original tuple in the reply", local, remote)
}

// parseOrigDst reads the destination address and port of CTA_TUPLE_ORIG
// from a conntrack entry's attributes; dstAttr is CTA_IP_V4_DST or
// CTA_IP_V6_DST.
func parseOrigDst(b []byte, dstAttr uint16) (netip.AddrPort, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var addr netip.Addr
	var port uint16
	for ad.Next() {
		if ad.Type() != ctaTupleOrig {
			continue
		}
		ad.Nested(func(t *netlink.AttributeDecoder) error {
			for t.Next() {
				switch t.Type() {
				case ctaTupleIP:
					t.Nested(func(ip *netlink.AttributeDecoder) error {
						for ip.Next() {
							if ip.Type() == dstAttr {
								addr, _ = netip.AddrFromSlice(ip.Bytes())
							}
						}
						return nil
					})
				case ctaTupleProto:
					t.Nested(func(p *netlink.AttributeDecoder) error {
						for p.Next() {
							if v := p.Bytes(); p.Type() == ctaProtoDst && len(v) == 2 {
								port = binary.BigEndian.Uint16(v)
							}
						}
						return nil
					})
				}
			}
			return nil
		})
	}
	if ad.Err() != nil || !addr.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr.Unmap(), port), true
}

package dnsfront

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

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

// conntrack asks the kernel's connection tracking about flows, one
// question at a time. It reads the reply itself rather than through
// netlink.Conn.Execute: the kernel marks its reply to a GET as part of a
// multi-part message (NLM_F_MULTI) and sends no NLMSG_DONE after it, so a
// reader that waits for the end of the multi-part message waits forever.
type conntrack struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

// ctTimeout bounds one question (SO_RCVTIMEO): the kernel answers at once
// or not at all.
const ctTimeout = time.Second

// dialConntrack opens a ctnetlink socket in the calling thread's network
// namespace.
func dialConntrack() (*conntrack, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open conntrack netlink: %w", err)
	}
	tv := unix.NsecToTimeval(ctTimeout.Nanoseconds())
	if err := errors.Join(unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}),
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open conntrack netlink: %w", err)
	}
	return &conntrack{fd: fd, buf: make([]byte, 16<<10)}, nil
}

func (ct *conntrack) close() error { return unix.Close(ct.fd) }

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
	data, err := ct.get(append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("conntrack get %v <- %v: %w", local, remote, err)
	}
	if dst, ok := parseOrigDst(data, src+1); ok {
		return dst, nil
	}
	return netip.AddrPort{}, fmt.Errorf("conntrack get %v <- %v: no original tuple in the reply", local, remote)
}

// get sends one IPCTNL_MSG_CT_GET with body and returns the attributes of
// the entry the kernel sends back (after its nfgenmsg header).
func (ct *conntrack) get(body []byte) ([]byte, error) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	ct.seq++
	req, err := (&netlink.Message{Header: netlink.Header{Length: uint32(unix.NLMSG_HDRLEN + len(body)),
		Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ctMsgGet), Flags: netlink.Request, Sequence: ct.seq},
		Data: body}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := unix.Sendto(ct.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	for {
		n, _, err := unix.Recvfrom(ct.fd, ct.buf, 0)
		if err != nil {
			return nil, err // EAGAIN: no answer within ctTimeout
		}
		if data, err, ok := ct.reply(ct.buf[:n]); ok {
			return data, err
		}
	}
}

// reply finds the answer to the current question among the messages of
// one datagram; ok is false when none is (replies to a question that
// timed out come later and are skipped).
func (ct *conntrack) reply(b []byte) (data []byte, err error, ok bool) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, nil, false
		}
		typ, seq, body := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:]), b[unix.NLMSG_HDRLEN:l]
		b = b[min(nlmsgAlign(l), len(b)):]
		switch {
		case seq != ct.seq || typ == unix.NLMSG_DONE || typ == unix.NLMSG_NOOP:
		case typ == unix.NLMSG_ERROR && len(body) >= 4:
			if errno := int32(binary.NativeEndian.Uint32(body)); errno != 0 {
				return nil, unix.Errno(-errno), true
			}
		case len(body) >= 4:
			return body[4:], nil, true
		}
	}
	return nil, nil, false
}

func nlmsgAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

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

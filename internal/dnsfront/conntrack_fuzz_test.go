package dnsfront

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctReply is a datagram as the kernel answers IPCTNL_MSG_CT_GET number
// seq: one IPCTNL_MSG_CT_NEW message (NLM_F_MULTI, no NLMSG_DONE after it) whose entry's
// original tuple goes to dst, and before it a stale reply to seq-1.
func ctReply(t testing.TB, seq uint32, dst netip.AddrPort) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleOrig, func(ae *netlink.AttributeEncoder) error {
		ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
			typ := uint16(ctaIPv6Src + 1)
			if dst.Addr().Is4() {
				typ = ctaIPv4Src + 1
			}
			ae.Bytes(typ, dst.Addr().AsSlice())
			return nil
		})
		ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
			ae.Uint8(ctaProtoNum, unix.IPPROTO_UDP)
			ae.Bytes(ctaProtoDst, binary.BigEndian.AppendUint16(nil, dst.Port()))
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, s := range []uint32{seq - 1, seq} {
		b, err := (&netlink.Message{Header: netlink.Header{Length: uint32(unix.NLMSG_HDRLEN + 4 + len(attrs)),
			Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK << 8), Flags: netlink.Multi, Sequence: s},
			Data: append([]byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}, attrs...)}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// FuzzConntrackReply feeds any datagram to the reader of conntrack's
// reply and its entry to parseOrigDst (the entry holds the tenant's
// addresses): neither may panic, and the entry found is shorter than
// the datagram less its headers. The seeds are the kernel's answers to the current question
// after a stale one, over IPv4 and IPv6, and an error.
func FuzzConntrackReply(f *testing.F) {
	const seq = 7
	for _, dst := range []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53"), netip.MustParseAddrPort("[2001:db8::53]:53")} {
		b := ctReply(f, seq, dst)
		ct := &conntrack{seq: seq}
		data, err, ok := ct.reply(b)
		attr := uint16(ctaIPv4Src + 1)
		if dst.Addr().Is6() {
			attr = ctaIPv6Src + 1
		}
		if got, found := parseOrigDst(data, attr); !ok || err != nil || !found || got != dst {
			f.Fatalf("seed for %v: reply ok %v err %v, original destination %v %v", dst, ok, err, got, found)
		}
		f.Add(b, uint32(seq))
	}
	nlerr := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+4))
	nlerr = binary.NativeEndian.AppendUint16(nlerr, unix.NLMSG_ERROR)
	nlerr = binary.NativeEndian.AppendUint16(nlerr, 0)
	nlerr = binary.NativeEndian.AppendUint32(nlerr, seq)
	nlerr = binary.NativeEndian.AppendUint32(nlerr, 0)
	errno := -int32(unix.ENOENT)
	f.Add(binary.NativeEndian.AppendUint32(nlerr, uint32(errno)), uint32(seq))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		ct := &conntrack{seq: seq}
		data, err, ok := ct.reply(b)
		if !ok || err != nil {
			return
		}
		if len(data) > len(b)-unix.NLMSG_HDRLEN-4 {
			t.Fatalf("entry of %d bytes from a datagram of %d", len(data), len(b))
		}
		parseOrigDst(data, ctaIPv4Src+1)
		parseOrigDst(data, ctaIPv6Src+1)
	})
}

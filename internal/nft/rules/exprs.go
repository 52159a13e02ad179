package rules

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Registers: reg 1..3 are the 16-byte legacy registers nft itself uses.
const (
	reg1 = 1
	reg2 = 2
)

var (
	accept = &expr.Verdict{Kind: expr.VerdictAccept}
	ne32   = binaryutil.NativeEndian.PutUint32
)

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// maskedCmp: (load & mask) <op> val, for 32-bit host-order loads.
func maskedCmp(load expr.Any, mask, val uint32, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(mask), Xor: ne32(0)},
		&expr.Cmp{Op: op, Register: reg1, Data: ne32(val)},
	}
}

func metaMark() expr.Any { return &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1} }
func ctMark() expr.Any   { return &expr.Ct{Key: expr.CtKeyMARK, Register: reg1} }

// setBits stores val in the bits of mask of the packet mark (meta) or the
// conntrack mark (ct), keeping all other bits: x = (x & ^mask) ^ val.
func setBits(ct bool, mask, val uint32) []expr.Any {
	load, store := metaMark(), expr.Any(&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
	if ct {
		load, store = ctMark(), &expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: reg1}
	}
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(^mask), Xor: ne32(val)},
		store,
	}
}

func l4proto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
	}
}

func nfproto(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}},
	}
}

func thSport() expr.Any {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2}
}

func thDport() expr.Any {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func lookup(set string, id uint32) expr.Any {
	return &expr.Lookup{SourceRegister: reg1, SetName: set, SetID: id}
}

// vmap looks reg 1 up in a verdict map.
func vmap(set string, id uint32) expr.Any {
	return &expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: set, SetID: id}
}

// ctStatusDNAT: ct status dnat.
func ctStatusDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(ipsDstNAT), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ne32(0)},
	}
}

// socketTransparent: socket transparent 0|1. The socket is the packet's
// (found by early demux or TPROXY) or looked up by its addresses; a packet
// with no socket matches neither.
func socketTransparent(want bool) []expr.Any {
	v := byte(0)
	if want {
		v = 1
	}
	return []expr.Any{
		&expr.Socket{Key: expr.SocketKeyTransparent, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{v}},
	}
}

// ctDirOriginal: ct direction original.
func ctDirOriginal() []expr.Any { return ctDir(0) }

// ctDirReply matches packets in the reply direction of their conntrack entry.
func ctDirReply() []expr.Any { return ctDir(1) }

func ctDir(d byte) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{d}},
	}
}

// maskedLookup loads a mark, masks it and looks the result up in set.
func maskedLookup(load expr.Any, mask uint32, set string) []expr.Any {
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: ne32(mask), Xor: ne32(0)},
		lookup(set, 0),
	}
}

// daddr matches the destination address against p (with the nfproto
// dependency nft adds in inet tables). A /0 prefix only checks the family.
func daddr(p netip.Prefix) []expr.Any { return addrMatch(p, false) }

// addrMatch matches the source (src) or destination address against p.
func addrMatch(p netip.Prefix, src bool) []expr.Any {
	p = p.Masked()
	a := p.Addr()
	out := nfproto(a.Is6())
	if p.Bits() == 0 {
		return out
	}
	offset, n := uint32(16), uint32(4)
	if a.Is6() {
		offset, n = 24, 16
	}
	if src { // the source address precedes the destination
		offset -= n
	}
	out = append(out, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n})
	if p.Bits() < a.BitLen() {
		out = append(out, &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n,
			Mask: prefixMask(p.Bits(), int(n)), Xor: make([]byte, n)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: a.AsSlice()})
}

func prefixMask(bits, n int) []byte {
	m := make([]byte, n)
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	return m
}

func rejectTCPReset() expr.Any { return &expr.Reject{Type: unix.NFT_REJECT_TCP_RST} }

func rejectAdminProhibited() expr.Any {
	return &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
}

// ipsDstNAT is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
const ipsDstNAT = 1 << 5

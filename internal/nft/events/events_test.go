package events

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// attr encodes one netlink attribute, padded to 4 bytes.
func attr(typ uint16, v []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func str(s string) []byte { return append([]byte(s), 0) }

func nfMsg(family byte, attrs ...[]byte) []byte {
	b := []byte{family, unix.NFNETLINK_V0, 0, 0}
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func nftType(msg uint16) uint16 { return unix.NFNL_SUBSYS_NFTABLES<<8 | msg }

func TestParseNftEvent(t *testing.T) {
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cases := []struct {
		name string
		typ  uint16
		data []byte
		want Nft
		ok   bool
	}{
		{"new generation", nftType(unix.NFT_MSG_NEWGEN),
			nfMsg(unix.AF_UNSPEC, attr(unix.NFTA_GEN_ID, be32(42)), attr(unix.NFTA_GEN_PROC_PID, be32(1234)), attr(unix.NFTA_GEN_PROC_NAME, str("nft"))),
			Nft{Gen: true, PID: 1234, Proc: "nft"}, true},
		{"table deleted", nftType(unix.NFT_MSG_DELTABLE),
			nfMsg(unix.NFPROTO_INET, attr(unix.NFTA_TABLE_NAME, str("egressfw")), attr(unix.NFTA_TABLE_FLAGS, be32(0))),
			Nft{Inet: true, Table: "egressfw", Change: "delete table"}, true},
		{"rule deleted, chain named", nftType(unix.NFT_MSG_DELRULE),
			nfMsg(unix.NFPROTO_INET, attr(unix.NFTA_RULE_TABLE, str("egressfw")), attr(unix.NFTA_RULE_CHAIN, str("output")),
				attr(unix.NFTA_RULE_EXPRESSIONS|unix.NLA_F_NESTED, nil)),
			Nft{Inet: true, Table: "egressfw", Change: "delete rule", Name: "output"}, true},
		{"element of an ip table", nftType(unix.NFT_MSG_NEWSETELEM),
			nfMsg(unix.NFPROTO_IPV4, attr(unix.NFTA_SET_ELEM_LIST_TABLE, str("nat")), attr(unix.NFTA_SET_ELEM_LIST_SET, str("s"))),
			Nft{Table: "nat", Change: "add element", Name: "s"}, true},
		{"truncated attribute", nftType(unix.NFT_MSG_DELTABLE),
			nfMsg(unix.NFPROTO_INET, attr(unix.NFTA_TABLE_NAME, str("egressfw"))[:6]), Nft{}, false},
		{"attribute longer than the message", nftType(unix.NFT_MSG_DELTABLE),
			nfMsg(unix.NFPROTO_INET, []byte{0xff, 0, 1, 0, 'x', 0, 0, 0}), Nft{}, false},
		{"no table", nftType(unix.NFT_MSG_DELCHAIN), nfMsg(unix.NFPROTO_INET), Nft{}, false},
		{"a query, not a change", nftType(unix.NFT_MSG_GETTABLE),
			nfMsg(unix.NFPROTO_INET, attr(unix.NFTA_TABLE_NAME, str("egressfw"))), Nft{}, false},
		{"another subsystem", unix.NFNL_SUBSYS_CTNETLINK<<8 | unix.NFT_MSG_DELTABLE,
			nfMsg(unix.NFPROTO_INET, attr(1, str("egressfw"))), Nft{}, false},
		{"short header", nftType(unix.NFT_MSG_DELTABLE), []byte{1, 0}, Nft{}, false},
	}
	for _, tc := range cases {
		got, ok := ParseNft(tc.typ, tc.data)
		checkParsed(t, "parseNftEvent", tc.name, got, ok, tc.want, tc.ok)
	}
}

// checkParsed compares a parser's result (compared only when ok) with the
// wanted one.
func checkParsed[T comparable](t *testing.T, parser, name string, got T, ok bool, want T, wantOK bool) {
	t.Helper()
	if ok != wantOK || ok && got != want {
		t.Errorf("%s: %s = %+v, %v; want %+v, %v", name, parser, got, ok, want, wantOK)
	}
}

func TestParseRouteEvent(t *testing.T) {
	hdr := func(table byte) []byte { return []byte{unix.AF_INET, 0, 0, 0, table, 0, 0, 0, 0, 0, 0, 0} }
	ne32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	cases := []struct {
		name string
		typ  uint16
		data []byte
		want Route
		ok   bool
	}{
		{"rule deleted, table above 255", unix.RTM_DELRULE,
			append(hdr(unix.RT_TABLE_UNSPEC), append(attr(unix.FRA_PRIORITY, ne32(1515)), attr(unix.FRA_TABLE, ne32(1515))...)...),
			Route{Rule: true, Table: 1515}, true},
		{"route deleted, small table", unix.RTM_DELROUTE, hdr(200), Route{Table: 200}, true},
		{"route added", unix.RTM_NEWROUTE, hdr(200), Route{}, false},
		{"short", unix.RTM_DELRULE, hdr(1)[:8], Route{}, false},
		{"bad attribute", unix.RTM_DELROUTE, append(hdr(1), 3, 0), Route{}, false},
	}
	for _, tc := range cases {
		got, ok := ParseRoute(tc.typ, tc.data)
		checkParsed(t, "parseRouteEvent", tc.name, got, ok, tc.want, tc.ok)
	}
}

func TestChangeLog(t *testing.T) {
	var a, b Log
	for _, ch := range []string{"output", "output", "tenant_1", "tenant_2", "tenant_3"} {
		a.Add(Nft{Change: "delete rule", Table: "egressfw", Name: ch})
	}
	a.AddProc("nft", 77)
	b.Add(Nft{Change: "add rule", Table: "egressfw", Name: "output"})
	b.AddProc("nft", 78)
	b.AddProc("", 0)
	a.Merge(&b)
	if got, want := a.String(), "delete rule ×5 (output, tenant_1, tenant_2, …); add rule (output)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := a.procs; len(got) != 3 || got[0] != "nft[77]" || got[1] != "nft[78]" || got[2] != "unknown" {
		t.Errorf("procs = %q", got)
	}
	a.Add(Nft{Change: "delete table", Table: "egressfw"})
	if got, want := a.String(), "add rule (output); delete table (egressfw)"; got != want {
		t.Errorf("with the table deleted, String() = %q, want %q", got, want)
	}
}

// FuzzParseEvents: any bytes parse without a panic, and a parsed change
// always names its table.
func FuzzParseEvents(f *testing.F) {
	f.Add(nftType(unix.NFT_MSG_DELRULE), nfMsg(unix.NFPROTO_INET, attr(1, str("egressfw")), attr(2, str("output"))))
	f.Add(nftType(unix.NFT_MSG_NEWGEN), nfMsg(0, attr(2, []byte{0, 0, 4, 210}), attr(3, str("nft"))))
	f.Add(uint16(unix.RTM_DELRULE), append(make([]byte, 12), attr(unix.FRA_TABLE, []byte{0xeb, 5, 0, 0})...))
	f.Fuzz(func(t *testing.T, typ uint16, data []byte) {
		if ev, ok := ParseNft(typ, data); ok && !ev.Gen && ev.Table == "" {
			t.Errorf("change without a table: %+v", ev)
		}
		ParseRoute(typ, data)
	})
}

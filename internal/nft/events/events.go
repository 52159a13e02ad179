package events

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Constants golang.org/x/sys/unix lacks (linux/netfilter/nf_tables.h,
// linux/netlink.h).
const (
	nftaFlowtableName = 2      // NFTA_FLOWTABLE_NAME
	nlaTypeMask       = 0x3fff // NLA_TYPE_MASK: without NLA_F_NESTED, NLA_F_NET_BYTEORDER
)

// Nft is one nftables notification as the watch sees it.
type Nft struct {
	Gen    bool   // NFT_MSG_NEWGEN: the transaction is complete
	PID    uint32 // NEWGEN: the committing process (as the kernel saw it)
	Proc   string // NEWGEN: its name
	Inet   bool   // the object is in an inet family table
	Bridge bool   // the object is in a bridge family table
	Table  string // the table the object belongs to
	Change string // e.g. "delete rule", "add element"
	Name   string // the chain, set, object or flowtable named (for a rule, its chain)
}

// nftChanges names each notification type and the attribute (after the
// table, which is attribute 1 of them all) that names the object.
var nftChanges = map[uint16]struct {
	change string
	name   uint16
}{
	unix.NFT_MSG_NEWTABLE:     {"add table", 0},
	unix.NFT_MSG_DELTABLE:     {"delete table", 0},
	unix.NFT_MSG_NEWCHAIN:     {"add chain", unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_DELCHAIN:     {"delete chain", unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_NEWRULE:      {"add rule", unix.NFTA_RULE_CHAIN},
	unix.NFT_MSG_DELRULE:      {"delete rule", unix.NFTA_RULE_CHAIN},
	unix.NFT_MSG_NEWSET:       {"add set", unix.NFTA_SET_NAME},
	unix.NFT_MSG_DELSET:       {"delete set", unix.NFTA_SET_NAME},
	unix.NFT_MSG_NEWSETELEM:   {"add element", unix.NFTA_SET_ELEM_LIST_SET},
	unix.NFT_MSG_DELSETELEM:   {"delete element", unix.NFTA_SET_ELEM_LIST_SET},
	unix.NFT_MSG_NEWOBJ:       {"add object", unix.NFTA_OBJ_NAME},
	unix.NFT_MSG_DELOBJ:       {"delete object", unix.NFTA_OBJ_NAME},
	unix.NFT_MSG_NEWFLOWTABLE: {"add flowtable", nftaFlowtableName},
	unix.NFT_MSG_DELFLOWTABLE: {"delete flowtable", nftaFlowtableName},
}

// ParseNft reads a netfilter netlink message of header type typ. ok is
// false for a message that is not an nftables change notification or is
// malformed.
func ParseNft(typ uint16, data []byte) (ev Nft, ok bool) {
	if typ>>8 != unix.NFNL_SUBSYS_NFTABLES || len(data) < 4 {
		return ev, false
	}
	msg := typ & 0xff
	if msg == unix.NFT_MSG_NEWGEN {
		ev.Gen = true
		ok = eachAttr(data[4:], func(t uint16, v []byte) {
			switch {
			case t == unix.NFTA_GEN_PROC_PID && len(v) == 4:
				ev.PID = binary.BigEndian.Uint32(v)
			case t == unix.NFTA_GEN_PROC_NAME:
				ev.Proc = cString(v)
			}
		})
		return ev, ok
	}
	kind, known := nftChanges[msg]
	if !known {
		return ev, false
	}
	ev.Inet, ev.Bridge, ev.Change = data[0] == unix.NFPROTO_INET, data[0] == unix.NFPROTO_BRIDGE, kind.change
	ok = eachAttr(data[4:], func(t uint16, v []byte) {
		switch {
		case t == 1: // NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,...}
			ev.Table = cString(v)
		case kind.name != 0 && t == kind.name:
			ev.Name = cString(v)
		}
	})
	return ev, ok && ev.Table != ""
}

// Route is a routing rule or route removal as the watch sees it.
type Route struct {
	Rule  bool // a rule (else a route)
	Table uint32
}

// ParseRoute reads an rtnetlink message; ok is true only for the
// deletion of a rule or a route, whose table it reports.
func ParseRoute(typ uint16, data []byte) (ev Route, ok bool) {
	// struct fib_rule_hdr and struct rtmsg are both 12 bytes with the
	// (8-bit) table at offset 4; FRA_TABLE and RTA_TABLE (both 15) carry
	// tables above 255.
	if (typ != unix.RTM_DELRULE && typ != unix.RTM_DELROUTE) || len(data) < 12 {
		return ev, false
	}
	ev.Rule, ev.Table = typ == unix.RTM_DELRULE, uint32(data[4])
	ok = eachAttr(data[12:], func(t uint16, v []byte) {
		if t == unix.RTA_TABLE && len(v) == 4 {
			ev.Table = binary.NativeEndian.Uint32(v)
		}
	})
	return ev, ok
}

// eachAttr calls f with the type (flags stripped) and payload of each
// netlink attribute in b; it returns false if b is not a well-formed list.
func eachAttr(b []byte, f func(typ uint16, v []byte)) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			return false
		}
		f(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[4:n])
		n = (n + 3) &^ 3
		if n > len(b) {
			n = len(b)
		}
		b = b[n:]
	}
	return true
}

// cString is a NUL-terminated string attribute.
func cString(v []byte) string {
	s, _, _ := strings.Cut(string(v), "\x00")
	return s
}

// Log sums up the foreign changes of one or more transactions for
// a log line: each kind of change once, with its count and the first few
// objects it named.
type Log struct {
	order []string
	kinds map[string]*changeKind
	procs []string
}

type changeKind struct {
	count int
	names []string
}

const changeNames = 3 // objects named per kind of change

// Add records one change.
func (c *Log) Add(ev Nft) {
	name := ev.Name
	if name == "" {
		name = ev.Table
	}
	c.addKind(ev.Change, 1, name)
}

// addKind counts n changes of one kind and records the objects named.
func (c *Log) addKind(change string, n int, names ...string) {
	if c.kinds == nil {
		c.kinds = map[string]*changeKind{}
	}
	k := c.kinds[change]
	if k == nil {
		k = &changeKind{}
		c.kinds[change] = k
		c.order = append(c.order, change)
	}
	k.count += n
	for _, name := range names {
		if len(k.names) < changeNames && !slices.Contains(k.names, name) {
			k.names = append(k.names, name)
		}
	}
}

// AddProc records the process that committed a transaction.
func (c *Log) AddProc(name string, pid uint32) {
	p := fmt.Sprintf("%s[%d]", name, pid)
	if name == "" && pid == 0 {
		p = "unknown"
	}
	if !slices.Contains(c.procs, p) {
		c.procs = append(c.procs, p)
	}
}

// Empty reports whether no change was recorded.
func (c *Log) Empty() bool { return len(c.order) == 0 }

// Procs are the processes that committed the changes, as "nft[1234]".
func (c *Log) Procs() []string { return c.procs }

// String is like "delete rule ×12 (output, forward_1, …); add rule (output)".
// A deleted table stands for the deletion of everything in it.
func (c *Log) String() string {
	parts := make([]string, 0, len(c.order))
	_, tableGone := c.kinds["delete table"]
	for _, ch := range c.order {
		if tableGone && ch != "delete table" && strings.HasPrefix(ch, "delete ") {
			continue
		}
		k := c.kinds[ch]
		s := ch
		if k.count > 1 {
			s += fmt.Sprintf(" ×%d", k.count)
		}
		names := strings.Join(k.names, ", ")
		if k.count > len(k.names) && len(k.names) == changeNames {
			names += ", …"
		}
		parts = append(parts, s+" ("+names+")")
	}
	return strings.Join(parts, "; ")
}

// Merge adds o's changes to c.
func (c *Log) Merge(o *Log) {
	for _, ch := range o.order {
		c.addKind(ch, o.kinds[ch].count, o.kinds[ch].names...)
	}
	for _, p := range o.procs {
		if !slices.Contains(c.procs, p) {
			c.procs = append(c.procs, p)
		}
	}
}

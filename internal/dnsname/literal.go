package dnsname

import (
	"net/netip"
	"strings"
)

// ParseIPLiteral reports whether s is an IP address in any spelling a client
// library might accept, and returns it. It understands IPv6 with or without
// brackets (zones are refused: they cannot name a remote host), and IPv4 in
// the forms inet_aton(3) and the WHATWG URL parser accept: one to four parts
// separated by dots, each decimal, octal (leading 0) or hex (0x), the last
// part filling the remaining bytes ("10.1" is 10.0.0.1, "2130706433" is
// 127.0.0.1, "0x0a.1" is 10.0.0.1). One trailing dot is allowed.
func ParseIPLiteral(s string) (netip.Addr, bool) {
	if len(s) == 0 || len(s) > 64 {
		return netip.Addr{}, false
	}
	if s[0] == '[' {
		if s[len(s)-1] != ']' {
			return netip.Addr{}, false
		}
		return parseV6(s[1 : len(s)-1])
	}
	if strings.IndexByte(s, ':') >= 0 {
		return parseV6(s)
	}
	return parseV4(strings.TrimSuffix(s, "."))
}

func parseV6(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// parseV4 implements the inet_aton grammar without allocating.
func parseV4(s string) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	for {
		if n == 4 {
			return netip.Addr{}, false
		}
		p, rest, more := strings.Cut(s, ".")
		v, ok := parseV4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
		if !more {
			break
		}
		s = rest
	}
	// All but the last part are single bytes; the last fills what remains.
	var v uint64
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= parts[i] << (24 - 8*uint(i))
	}
	lastBits := 32 - 8*uint(n-1)
	if parts[n-1] >= 1<<lastBits {
		return netip.Addr{}, false
	}
	v |= parts[n-1]
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseV4Part parses one inet_aton part. Values are capped well above 2^32
// so that overflow cannot wrap into a valid address.
func parseV4Part(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" is zero, as in the WHATWG parser
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	var v uint64
	for i := 0; i < len(p); i++ {
		d, ok := digit(p[i])
		if !ok || d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 1<<33 {
			return 0, false
		}
	}
	return v, true
}

func digit(c byte) (uint64, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}

// looksNumeric reports whether a top-level label is something only an IPv4
// parser should interpret: all decimal digits, or 0x followed by hex digits.
// Such a name that ParseIPLiteral rejects (e.g. "1.2.3.4.5", "256.1.1.1") is
// invalid rather than a name to look up.
func looksNumeric(label string) bool {
	if label == "" {
		return false
	}
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		for i := 2; i < len(label); i++ {
			if _, ok := digit(label[i]); !ok {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			return false
		}
	}
	return true
}

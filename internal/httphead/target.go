package httphead

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/egressfw/egressfw/internal/dnsname"
)

// authority is a parsed host[:port].
type authority struct {
	name string
	addr netip.Addr
	port uint16 // 0 when absent
}

func (a authority) String() string {
	h := a.name
	if a.addr.IsValid() {
		h = a.addr.String()
	}
	if a.port != 0 {
		return fmt.Sprintf("%s:%d", h, a.port)
	}
	return h
}

// resolveTarget works out the host from the request-target and the Host
// header, requiring them to agree when both name one.
func resolveTarget(r *Head, target, host []byte, hasHost bool) error {
	if !hasHost && r.Version == "HTTP/1.1" {
		return malformed("HTTP/1.1 request without Host header")
	}
	var fromHost authority
	if hasHost {
		var err error
		if fromHost, err = parseAuthority(host); err != nil {
			return fmt.Errorf("in Host header: %w", err)
		}
	}
	t, defaultPort, hasTarget, err := targetAuthority(r, target)
	if err != nil {
		return err
	}
	final := fromHost
	if hasTarget {
		if hasHost && !agree(t, fromHost, defaultPort) {
			return malformed("%s host %s does not match Host %s", targetForm(r), t, fromHost)
		}
		final = t
		if final.port == 0 {
			final.port = fromHost.port
		}
	}
	r.Name, r.Addr, r.Port = final.name, final.addr, final.port
	return nil
}

func targetForm(r *Head) string {
	if r.CONNECT {
		return "CONNECT"
	}
	return "absolute-form"
}

// targetAuthority returns the authority named by the request-target, if
// any, and the port implied by its scheme.
func targetAuthority(r *Head, target []byte) (a authority, defaultPort uint16, ok bool, err error) {
	switch {
	case r.Method == "CONNECT":
		r.CONNECT = true
		if a, err = parseAuthority(target); err != nil {
			return a, 0, false, fmt.Errorf("in CONNECT target: %w", err)
		}
		if a.port == 0 {
			return a, 0, false, malformed("CONNECT target %s has no port", a)
		}
		return a, a.port, true, nil
	case target[0] == '/':
		return a, 0, false, nil
	case len(target) == 1 && target[0] == '*':
		if r.Method != "OPTIONS" {
			return a, 0, false, malformed("asterisk-form target with method %s", r.Method)
		}
		return a, 0, false, nil
	}
	scheme, rest, found := bytes.Cut(target, []byte("://"))
	switch {
	case !found:
		return a, 0, false, malformed("request-target %q is not origin-, absolute- or asterisk-form", truncate(target))
	case asciiEqualFold(scheme, "http"):
		defaultPort = 80
	case asciiEqualFold(scheme, "https"):
		defaultPort = 443
	default:
		return a, 0, false, malformed("absolute-form scheme %q is not http or https", truncate(scheme))
	}
	if end := bytes.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	if a, err = parseAuthority(rest); err != nil {
		return a, 0, false, fmt.Errorf("in absolute-form target: %w", err)
	}
	return a, defaultPort, true, nil
}

// agree reports whether a request-target authority and the Host header name
// the same host and port, an absent port meaning the scheme's default.
func agree(t, h authority, defaultPort uint16) bool {
	if t.name != h.name || t.addr != h.addr {
		return false
	}
	tp, hp := t.port, h.port
	if tp == 0 {
		tp = defaultPort
	}
	if hp == 0 {
		hp = defaultPort
	}
	return tp == hp
}

// ParseAuthority parses host[:port] the way a Host header is read: IPv6
// only in brackets, no userinfo, port 1-65535 (0 when absent), the host
// through dnsname.Host (a name, or an IP literal in any spelling). It is
// for the callers that take a destination from a person, such as `egressfw
// explain`, so that they read it exactly as the data path would.
func ParseAuthority(s string) (name string, addr netip.Addr, port uint16, err error) {
	a, err := parseAuthority([]byte(s))
	return a.name, a.addr, a.port, err
}

// parseAuthority parses host[:port] as found in Host, absolute-form and
// CONNECT targets: IPv6 only in brackets, no userinfo, port 1-65535.
func parseAuthority(b []byte) (authority, error) {
	var a authority
	if len(b) == 0 {
		return a, malformed("empty host")
	}
	if bytes.IndexByte(b, '@') >= 0 {
		return a, malformed("userinfo in host %q", truncate(b))
	}
	host, port := b, []byte(nil)
	hasPort := false
	if b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return a, malformed("unterminated IPv6 literal in %q", truncate(b))
		}
		host = b[:end+1]
		switch rest := b[end+1:]; {
		case len(rest) > 0 && rest[0] == ':':
			port, hasPort = rest[1:], true
		case len(rest) > 0:
			return a, malformed("bytes after IPv6 literal in %q", truncate(b))
		}
	} else if i := bytes.IndexByte(b, ':'); i >= 0 {
		if bytes.IndexByte(b[i+1:], ':') >= 0 {
			return a, malformed("IPv6 literal without brackets in %q", truncate(b))
		}
		host, port, hasPort = b[:i], b[i+1:], true
	}
	if hasPort {
		p, err := parsePort(port)
		if err != nil {
			return a, err
		}
		a.port = p
	}
	name, addr, err := dnsname.Host(string(host))
	if err != nil {
		return a, fmt.Errorf("%w: http: host: %w", ErrMalformed, err)
	}
	if host[0] == '[' && !addr.IsValid() {
		return a, malformed("bracketed host %q is not an IPv6 address", truncate(host))
	}
	a.name, a.addr = name, addr
	return a, nil
}

// parsePort accepts 1-5 decimal digits with a value of 1-65535.
func parsePort(p []byte) (uint16, error) {
	if len(p) == 0 || len(p) > 5 {
		return 0, malformed("port %q is not 1-5 digits", truncate(p))
	}
	v := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, malformed("port %q is not decimal", truncate(p))
		}
		v = v*10 + int(c-'0')
	}
	if v == 0 || v > 65535 {
		return 0, malformed("port %d is out of range", v)
	}
	return uint16(v), nil
}

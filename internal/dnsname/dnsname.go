package dnsname

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// MaxInput bounds the work done on a host string before it is rejected.
const MaxInput = 1024

// Errors returned by Normalize and Host; wrapped with details.
var (
	ErrEmpty   = errors.New("empty host")
	ErrInvalid = errors.New("invalid host name")
)

// profile maps Unicode names to A-labels the way browsers look names up
// (UTS #46 non-transitional), but leaves label syntax to validateASCII so that
// underscores, which real hosts use, are accepted on both the ASCII and the
// Unicode path.
var profile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.StrictDomainName(false),
	idna.VerifyDNSLength(false),
)

// Host classifies a host string from SNI, a Host header or a URL. An IP
// literal (dotted quad, the alternate spellings inet_aton accepts such as
// 0x0a.1, 2130706433 or 017700000001, IPv6 with or without brackets) yields
// addr; anything else yields the normalised name. A string that looks like an
// IPv4 address but is not a valid one is an error, never a name.
func Host(s string) (name string, addr netip.Addr, err error) {
	if a, ok := ParseIPLiteral(s); ok {
		return "", a, nil
	}
	name, err = Normalize(s)
	return name, netip.Addr{}, err
}

// Normalize returns the canonical form of a DNS name: lower case, one
// trailing dot dropped, Unicode labels converted to A-labels, each label 1-63
// bytes of [a-z0-9-_] not starting or ending with '-', at most 253 bytes in
// all, and a top-level label that is not numeric (such names are IPv4
// spellings, see ParseIPLiteral).
func Normalize(name string) (string, error) {
	if name == "" {
		return "", ErrEmpty
	}
	if len(name) > MaxInput {
		return "", fmt.Errorf("%w: %d bytes", ErrInvalid, len(name))
	}
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" {
		return "", fmt.Errorf("%w: %q has no labels", ErrInvalid, name)
	}
	out := trimmed
	if !isLowerASCII(trimmed) {
		a, err := profile.ToASCII(trimmed)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrInvalid, name, err)
		}
		out = a
	}
	if err := validateASCII(out); err != nil {
		return "", fmt.Errorf("%w: %q: %s", ErrInvalid, name, err)
	}
	return out, nil
}

// isLowerASCII reports whether s needs no mapping: lower-case letters,
// digits, '-', '_' and '.' only. Such names skip the IDNA machinery, which
// keeps the common case free of allocations.
func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validateASCII checks the label and length rules on a lower-case ASCII name.
// It returns a plain string reason so the caller can wrap it once.
func validateASCII(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("name is %d bytes, more than 253", len(s))
	}
	last := ""
	for rest := s; ; {
		label, tail, more := strings.Cut(rest, ".")
		if err := validateLabel(label); err != nil {
			return err
		}
		last = label
		if !more {
			break
		}
		rest = tail
	}
	if looksNumeric(last) {
		return fmt.Errorf("top-level label %q is numeric but the whole is not an IPv4 address", last)
	}
	return nil
}

func validateLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty label")
	case len(l) > 63:
		return fmt.Errorf("label %q is longer than 63 bytes", l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with '-'", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q has byte %q", l, c)
		}
	}
	return nil
}

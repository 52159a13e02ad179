package sni

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/egressfw/egressfw/internal/dnsname"
)

// Extension code points this package reads.
const (
	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
	extECH               = 0xfe0d
)

// Bits for rejecting repeated extensions among those we interpret: a
// repeat would let us check one value while the server uses another. RFC
// 8446 section 4.2 forbids repeats of any type; the server enforces that
// for the rest.
const (
	seenSNI = 1 << iota
	seenALPN
	seenVersions
	seenECH
)

// parseClientHello parses a complete ClientHello handshake message, header
// included, the way crypto/tls does: every read is length-checked and every
// length-prefixed field must be consumed exactly.
func parseClientHello(msg []byte) (Result, Status, error) {
	r := Result{Kind: KindTLS}
	s := cryptobyte.String(msg[handshakeHeaderLen:])
	var sessionID, suites, compression, exts cryptobyte.String
	if !s.ReadUint16(&r.LegacyVersion) || !s.Skip(32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) ||
		!s.ReadUint16LengthPrefixed(&suites) ||
		!s.ReadUint8LengthPrefixed(&compression) {
		return r, Malformed, malformedTLS("ClientHello is truncated before its extensions")
	}
	switch {
	case r.LegacyVersion>>8 != 3:
		return r, Malformed, malformedTLS("ClientHello legacy_version %#04x is not TLS", r.LegacyVersion)
	case len(sessionID) > 32:
		return r, Malformed, malformedTLS("legacy_session_id of %d bytes", len(sessionID))
	case len(suites) < 2 || len(suites)%2 != 0:
		return r, Malformed, malformedTLS("cipher_suites of %d bytes", len(suites))
	case len(compression) < 1:
		return r, Malformed, malformedTLS("empty legacy_compression_methods")
	}
	if s.Empty() {
		return r, Done, nil // pre-TLS-1.2 style hello without extensions
	}
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return r, Malformed, malformedTLS("extensions block length does not match the ClientHello")
	}
	host, err := parseExtensions(&r, exts)
	if err != nil {
		return r, Malformed, err
	}
	if host == nil {
		return r, Done, nil
	}
	name, addr, err := dnsname.Host(string(host))
	if err != nil {
		return r, Malformed, fmt.Errorf("%w: tls: server_name: %w", ErrMalformed, err)
	}
	if addr.IsValid() {
		r.Addr = addr
		return r, Malformed, fmt.Errorf("%w: %w: %s", ErrMalformed, ErrIPLiteralSNI, addr)
	}
	r.Name = name
	return r, Done, nil
}

// parseExtensions fills r from the extensions it understands and returns
// the raw SNI host_name (nil if absent).
func parseExtensions(r *Result, exts cryptobyte.String) (host []byte, err error) {
	seen := 0
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return nil, malformedTLS("truncated extension")
		}
		bit := 0
		switch typ {
		case extServerName:
			bit = seenSNI
			host, err = parseServerName(data)
		case extALPN:
			bit = seenALPN
			r.ALPN, err = parseALPN(data)
		case extSupportedVersions:
			bit = seenVersions
			r.SupportedVersions, err = parseSupportedVersions(data)
		case extECH:
			bit = seenECH
			r.ECH = true
		}
		if err != nil {
			return nil, err
		}
		if seen&bit != 0 {
			return nil, malformedTLS("duplicate extension %#04x", typ)
		}
		seen |= bit
	}
	return host, nil
}

// parseServerName returns the host_name of a server_name extension (RFC
// 6066 section 3), nil if the list holds only other name types.
func parseServerName(data cryptobyte.String) ([]byte, error) {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return nil, malformedTLS("server_name extension is not a non-empty ServerNameList")
	}
	var host []byte
	for !list.Empty() {
		var typ uint8
		var name cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&name) || name.Empty() {
			return nil, malformedTLS("truncated or empty entry in server_name")
		}
		if typ != 0 {
			continue
		}
		if host != nil {
			return nil, malformedTLS("more than one host_name in server_name")
		}
		host = name
	}
	return host, nil
}

// parseALPN returns the protocol names of an ALPN extension (RFC 7301). The
// names share one backing string to keep allocations to two.
func parseALPN(data cryptobyte.String) ([]string, error) {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return nil, malformedTLS("ALPN extension is not a non-empty ProtocolNameList")
	}
	n := 0
	for l := list; !l.Empty(); n++ {
		var p cryptobyte.String
		if !l.ReadUint8LengthPrefixed(&p) || p.Empty() {
			return nil, malformedTLS("truncated or empty protocol name in ALPN")
		}
	}
	all := string(list)
	protos := make([]string, 0, n)
	for i := 0; i < len(all); {
		end := i + 1 + int(all[i])
		protos = append(protos, all[i+1:end])
		i = end
	}
	return protos, nil
}

// parseSupportedVersions returns the versions of a ClientHello's
// supported_versions extension (RFC 8446 section 4.2.1), minus GREASE.
func parseSupportedVersions(data cryptobyte.String) ([]uint16, error) {
	var list cryptobyte.String
	if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() || len(list) < 2 || len(list)%2 != 0 {
		return nil, malformedTLS("supported_versions extension is not a list of versions")
	}
	n := 0
	for i := 0; i < len(list); i += 2 {
		if !isGREASE(uint16(list[i])<<8 | uint16(list[i+1])) {
			n++
		}
	}
	vs := make([]uint16, 0, n)
	for i := 0; i < len(list); i += 2 {
		if v := uint16(list[i])<<8 | uint16(list[i+1]); !isGREASE(v) {
			vs = append(vs, v)
		}
	}
	return vs, nil
}

// isGREASE reports the reserved values of RFC 8701 (0x0a0a, 0x1a1a, ...).
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

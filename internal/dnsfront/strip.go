package dnsfront

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Strip says what is removed from the HTTPS and SVCB records of an answer
// (RFC 9460) before a tenant sees them. Everything else in a record is
// passed on as the upstream sent it (miekg/dns's SVCB types re-encode
// every SvcParam byte for byte). Alias-mode records (priority 0) should
// carry no parameters; any they carry are stripped alike.
type Strip struct {
	// ECH removes the ech SvcParam, so ECH clients (browsers) send a
	// cleartext SNI that policy can read. On by default.
	ECH bool
	// QUIC removes QUIC-only ALPN values (h3, h3-NN, hq-*, doq) while the
	// tenant's UDP 443 is denied, so clients do not try QUIC first and wait
	// for it to fail. The caller sets it.
	QUIC bool
	// Hints removes ipv4hint and ipv6hint: addresses egressfw did not
	// validate; a client that would use them looks up A and AAAA instead,
	// which egressfw answers with validated addresses.
	Hints bool
}

// Stripped counts what Strip.Apply removed from one answer.
type Stripped struct {
	Params  int // SvcParams removed (ech, hints, an emptied alpn)
	ECH     int // of those, ech
	Hints   int // of those, ipv4hint and ipv6hint
	ALPN    int // QUIC-only ALPN values removed
	Records int // records dropped: a removed key was mandatory, or no ALPN was left
}

// Any reports whether anything was removed.
func (s Stripped) Any() bool { return s != Stripped{} }

// Apply edits the HTTPS and SVCB records of rrs in place and returns rrs
// without the records it dropped, as a reply to a tenant carries them
// (`egressfw explain` shows them so).
func (s Strip) Apply(rrs []dns.RR) ([]dns.RR, Stripped) {
	var st Stripped
	if s == (Strip{}) {
		return rrs, st
	}
	return slices.DeleteFunc(rrs, func(rr dns.RR) bool {
		var svcb *dns.SVCB
		switch v := rr.(type) {
		case *dns.HTTPS:
			svcb = &v.SVCB
		case *dns.SVCB:
			svcb = v
		default:
			return false
		}
		keep := s.svcb(svcb, &st)
		if !keep {
			st.Records++
		}
		return !keep
	}), st
}

// svcb strips one record; false means the record must be dropped.
func (s Strip) svcb(r *dns.SVCB, st *Stripped) bool {
	var removed []dns.SVCBKey
	noDefault := false
	r.Value = slices.DeleteFunc(r.Value, func(kv dns.SVCBKeyValue) bool {
		drop := false
		switch v := kv.(type) {
		case *dns.SVCBECHConfig:
			drop = s.ECH
			st.ECH += b2i(drop)
		case *dns.SVCBIPv4Hint, *dns.SVCBIPv6Hint:
			drop = s.Hints
			st.Hints += b2i(drop)
		case *dns.SVCBNoDefaultAlpn:
			noDefault = true
		case *dns.SVCBAlpn:
			if s.QUIC {
				n := len(v.Alpn)
				v.Alpn = slices.DeleteFunc(v.Alpn, quicOnly)
				st.ALPN += n - len(v.Alpn)
				drop = len(v.Alpn) == 0
			}
		}
		if drop {
			removed = append(removed, kv.Key())
			st.Params++
		}
		return drop
	})
	if noDefault && slices.Contains(removed, dns.SVCB_ALPN) {
		return false // only QUIC protocols were on offer
	}
	for _, kv := range r.Value {
		if m, ok := kv.(*dns.SVCBMandatory); ok && slices.ContainsFunc(m.Code, func(k dns.SVCBKey) bool { return slices.Contains(removed, k) }) {
			return false // the endpoint requires what was removed
		}
	}
	return true
}

// quicOnly reports whether an ALPN protocol id runs over QUIC only.
func quicOnly(id string) bool {
	return id == "h3" || strings.HasPrefix(id, "h3-") || strings.HasPrefix(id, "hq-") ||
		id == "doq" || strings.HasPrefix(id, "doq-")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

package policy

import "fmt"

// Code is a low-cardinality verdict, suitable as a metrics label: the
// policy's own verdicts on a destination, and the refusals and failures the
// data path reaches itself (see Deny).
type Code uint8

// Verdict codes.
const (
	CodeAllowed           Code = iota // allowed
	CodeDeniedDomain                  // the name matches deny_domains
	CodeNotAllowedDomain              // the name matches no allow_domains pattern
	CodeInternalAddress               // an address is internal and no allow_internal entry covers it
	CodeInternalPort                  // an allow_internal entry covers the address, but not the port
	CodeNoAddresses                   // the name resolved to no address
	CodeLiteralNotAllowed             // an IP literal, and the tenant's allow list is not "*"
	CodeLiteralMismatch               // the IP literal is not the original destination
	CodeNoName                        // neither a name nor an IP literal
	CodeInvalidName                   // the caller could not normalise the name
	CodeNoTenant                      // the connection belongs to no tenant (no tenant holds its slot)

	// What a request asks for that cannot be checked; report mode lets it
	// through.
	CodeConnectMethod // a CONNECT request: its tunnel cannot be checked
	CodeH2Preface     // the HTTP/2 prior-knowledge preface names no host
	CodePortMismatch  // the Host port is not the connection's destination port
	CodeQueryType     // a DNS query of a type the tenant's dns_query_types does not list
	// A later request on a connection names a host whose validated
	// addresses do not include the one the connection is connected to.
	CodeNotOnConnection

	// The name's lookup failed (see LookupError); report mode lets the
	// connection through.
	CodeDNSNXDomain    // the name does not exist
	CodeDNSNoAddresses // the name exists but has no address
	CodeDNSTimeout     // no answer in dns.timeout
	CodeDNSFailure     // any other DNS failure

	// The connection could not be read or admitted: refused in every mode.
	CodePeekTimeout     // no complete ClientHello or request head in listener.peek_timeout
	CodeClientClosed    // the client closed before its first bytes were complete
	CodeUnknownProtocol // the first bytes are neither TLS nor HTTP/1
	CodeMalformed       // the ClientHello or request head is malformed
	CodeHelloTooLarge   // the ClientHello is over listener.max_client_hello
	CodeTooManyRecords  // the ClientHello spans too many TLS records
	CodeHeadTooLarge    // the request head is over listener.max_http_header
	CodeOverLimit       // a connection cap of [limits] is full
	CodeNoOriginalDst   // conntrack has no NAT record of a redirected connection

	// The destination was allowed, but could not be reached: logged as
	// decision "error".
	CodeUpstreamRefused     // the connection was refused
	CodeUpstreamTimeout     // no answer within listener.connect_timeout
	CodeUpstreamUnreachable // no route, or the network is down
	CodeUpstreamError       // any other failure to connect

	codeCount // the number of codes
)

var codeNames = [...]string{
	CodeAllowed:             "allowed",
	CodeDeniedDomain:        "denied_domain",
	CodeNotAllowedDomain:    "not_allowed_domain",
	CodeInternalAddress:     "internal_address",
	CodeInternalPort:        "internal_port",
	CodeNoAddresses:         "no_addresses",
	CodeLiteralNotAllowed:   "literal_not_allowed",
	CodeLiteralMismatch:     "literal_mismatch",
	CodeNoName:              "no_name",
	CodeInvalidName:         "invalid_name",
	CodeNoTenant:            "tenant_removed", // its label since the data path first logged it
	CodeConnectMethod:       "connect_method",
	CodeH2Preface:           "h2_prior_knowledge",
	CodePortMismatch:        "port_mismatch",
	CodeQueryType:           "query_type",
	CodeNotOnConnection:     "not_on_connection",
	CodeDNSNXDomain:         "dns_nxdomain",
	CodeDNSNoAddresses:      "dns_no_addresses",
	CodeDNSTimeout:          "dns_timeout",
	CodeDNSFailure:          "dns_failure",
	CodePeekTimeout:         "peek_timeout",
	CodeClientClosed:        "client_closed",
	CodeUnknownProtocol:     "unknown_protocol",
	CodeMalformed:           "malformed",
	CodeHelloTooLarge:       "hello_too_large",
	CodeTooManyRecords:      "too_many_records",
	CodeHeadTooLarge:        "head_too_large",
	CodeOverLimit:           "over_limit",
	CodeNoOriginalDst:       "no_original_destination",
	CodeUpstreamRefused:     "upstream_refused",
	CodeUpstreamTimeout:     "upstream_timeout",
	CodeUpstreamUnreachable: "upstream_unreachable",
	CodeUpstreamError:       "upstream_error",
}

// String returns the code's metrics label, e.g. "denied_domain".
func (c Code) String() string {
	if int(c) < len(codeNames) && codeNames[c] != "" {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", uint8(c))
}

// Reportable reports whether report mode lets a connection with this
// verdict through: a verdict on its destination, as opposed to a
// connection that could not be read or admitted, one of no tenant, or an
// upstream failure.
func (c Code) Reportable() bool {
	return c < CodeNoTenant || (c > CodeNoTenant && c < CodePeekTimeout)
}

// IsDNS reports whether c is a failed lookup.
func (c Code) IsDNS() bool { return c >= CodeDNSNXDomain && c <= CodeDNSFailure }

// IsUpstream reports whether c is a failure to reach an allowed destination.
func (c Code) IsUpstream() bool { return c >= CodeUpstreamRefused && c < codeCount }

// isPeek reports whether c is a connection whose first bytes could not be
// read.
func (c Code) isPeek() bool { return c >= CodePeekTimeout && c <= CodeHeadTooLarge }

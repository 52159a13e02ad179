package resolver

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// Sentinel errors, matched with errors.Is on what Lookup returns. Each says
// in a few words why a connection could not be given an address.
var (
	// ErrNXDomain: the name does not exist.
	ErrNXDomain = errors.New("name does not exist (NXDOMAIN)")
	// ErrNoAddresses: the name exists but has no A or AAAA records (NODATA).
	ErrNoAddresses = errors.New("name has no addresses (NODATA)")
	// ErrServerFailure: every server answered with an error rcode (SERVFAIL,
	// REFUSED, ...) or a bogus answer.
	ErrServerFailure = errors.New("DNS server failure")
	// ErrTimeout: no server answered within the lookup timeout.
	ErrTimeout = errors.New("DNS lookup timed out")
	// ErrNetwork: the servers could not be reached (socket errors).
	ErrNetwork = errors.New("DNS network error")
	// ErrInvalidName: the name is not a plain hostname (letters, digits,
	// '-', '_', dot-separated labels of 1..63 bytes, at most 253 bytes).
	ErrInvalidName = errors.New("invalid DNS name")
	// ErrQueryType: Query was asked for a type it does not serve (OPT, a
	// meta or question-only type such as AXFR, TSIG or ANY).
	ErrQueryType = errors.New("query type not served")
)

// LookupError is the error Lookup returns for a failed resolution. It
// matches its Kind with errors.Is and unwraps to the underlying cause.
type LookupError struct {
	// Name is the name looked up.
	Name string
	// Kind is one of the sentinel errors above.
	Kind error
	// Server is the server whose answer decided the outcome ("" if none).
	Server string
	// Rcode is the DNS response code for ErrServerFailure, else -1.
	Rcode int
	// Err is the underlying cause, if any (a socket error, a bogus answer).
	Err error
}

// Error describes the failure for a person reading a log line.
func (e *LookupError) Error() string {
	msg := fmt.Sprintf("resolve %s: %v", e.Name, e.Kind)
	if e.Rcode >= 0 {
		msg += " " + rcodeName(e.Rcode)
	}
	if e.Server != "" {
		msg += " via " + e.Server
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is this error's Kind.
func (e *LookupError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause.
func (e *LookupError) Unwrap() error { return e.Err }

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// newError builds a LookupError without an rcode.
func newError(name string, kind error, server string, cause error) *LookupError {
	return &LookupError{Name: name, Kind: kind, Server: server, Rcode: -1, Err: cause}
}

// failRank orders failure kinds from least to most informative, so the
// error reported after several failed tries is the most useful one: a
// timeout is only reported when nothing better is known.
func failRank(e *LookupError) int {
	if e == nil {
		return 0
	}
	switch e.Kind {
	case ErrTimeout:
		return 1
	case ErrNetwork:
		return 2
	case ErrServerFailure:
		return 3
	}
	return 0
}

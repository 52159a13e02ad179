// Package policy owns the verdict on a tenant's connection: whether it may
// leave the host, and why. It classifies addresses as internal or public
// (the IANA special-purpose registries, cloud platform endpoints, the
// host's own addresses, policy.internal_cidrs, public_cidrs and
// nat64_prefixes) and applies a tenant's allow_domains, deny_domains and
// allow_internal rules to a name, the addresses one lookup found for it
// (or an IP literal), and the destination the connection was going to.
//
// The verdict is a Decision, one value from Decide (or Deny, for what the
// data path refuses itself: requests it cannot judge, connections it could
// not read or admit, upstream failures) to the connection's log line, its
// metrics, what a refused tenant is told and `egressfw explain`. The
// tenant's mode is applied in one place: report mode lets through what a
// verdict on the destination refused (Code.Reportable). A name is checked
// once, before its lookup, so a name the rules refuse is never sent to
// DNS; the lookup is the caller's (a Lookup, so this package imports no
// resolver). Names given to this package are already normalised (lower
// case, no trailing dot, A-labels: internal/dnsname).
package policy

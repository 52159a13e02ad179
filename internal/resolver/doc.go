// Package resolver is egressfw's own DNS stub resolver. It turns a hostname
// into the addresses the policy layer validates and the dialer then uses
// as-is, so no other part of egressfw ever resolves a name (a second lookup
// after validation would reopen DNS rebinding).
//
// It queries A and AAAA concurrently over UDP (TCP on truncation), tries
// servers in order within one timeout budget, follows CNAME chains only
// inside the answer and at most 8 hops deep (returning the chain), keeps at
// most Config.MaxAddrs addresses per name, caches answers with clamped TTLs
// in an LRU bounded by entries and bytes, and coalesces concurrent lookups
// of the same name.
//
// It also answers tenants' DNS questions (records.go): A, AAAA and CNAME
// from the very Result Lookup caches for the proxy, other types (HTTPS,
// SVCB, ...) from the upstream within the same bounds.
package resolver

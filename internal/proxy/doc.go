// Package proxy is egressfw's data path.
//
// Layout: proxy.go the Proxy and the Snapshot a reload builds and installs; listen.go one
// listener per tenant slot and its accept loops; conn.go one connection; decide.go the verdict
// (judge: the request's own checks, then policy.Decide); record.go its log line; deny.go what a
// refused client gets; limits.go, pace.go, ratelimit.go the caps, the pacing and the folding of
// repeated denials; metrics.go the data path's series; explain.go the dry run, the same verdict.
//
// One connection: acceptLoop (after pace) -> handle (the listener's slot is the tenant) ->
// original (TPROXY: the local address; REDIRECT: conntrack's NAT record) -> admit (the caps) ->
// peek (sni.Peek, the peek caps) -> judge (name rules, one lookup, every address, the mode) ->
// connect (tproxy.Dialer, validated addresses only) -> tproxy.Splice -> finish (one log line).
//
// The daemon (internal/daemon) owns the lifecycle: for each config it Builds a Snapshot with
// the tenants' slots, has the proxy Listen on the slots' ports, applies the rules that send
// traffic there, then Installs the snapshot and Prunes the listeners no tenant holds. A
// connection is judged by the snapshot installed when it arrived, never by another tenant's:
// before a slot's tenant is installed, its connections are reset. Every verdict is a
// policy.Decision, from the decision to the log line, the metrics and `egressfw explain`.
package proxy

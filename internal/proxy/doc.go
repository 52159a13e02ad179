// Package proxy is egressfw's data path.
//
// Layout: proxy.go the Proxy and the Snapshot a reload builds and installs; listen.go one
// listener per tenant slot and its accept loops; conn.go one connection; decide.go the verdict
// (judge: the request's own checks, then policy.Decide); h1judge.go the judge of a plain-HTTP
// connection's later requests, which package h1relay asks; record.go the log line; limits.go,
// pace.go the caps and the pacing wired to the tenants (package admission holds the pools and
// pacers, package refuse answers a refused client, package logfold folds repeated denials);
// metrics.go the series; explain.go the dry run, the same verdict; dnslog.go the tenants' DNS
// glue (the answer is package tenantdns's, the sockets package dnsfront's); live.go the
// relaying connections, which each Install judges again.
//
// One connection: acceptLoop (after pace) -> handle (the listener's slot is the tenant) ->
// original (TPROXY: the local address; REDIRECT: conntrack's NAT record) -> admit (the caps) ->
// peek (sni.Peek, the peek caps) -> judge (name rules, one lookup, every address, the mode) ->
// connect (tproxy.Dialer, validated addresses only) -> tproxy.Splice, or for plain HTTP
// h1relay.Conn.Run (each later request judged by h1conn.Request) -> finish (one log line).
//
// The daemon (internal/daemon) owns the lifecycle: for each config it Builds a Snapshot with
// the tenants' slots, has the proxy Listen on the slots' ports, applies the rules that send
// traffic there, then Installs the snapshot and Prunes the listeners no tenant holds. A tenant
// whose DNS egressfw answers has DNS listeners (package dnsfront) opened and closed with its
// TCP listener. A connection (or a DNS query) is judged by the snapshot installed when it
// arrived, never by another tenant's: before a slot's tenant is installed, its connections are
// reset (its queries refused). A connection that is relaying when another snapshot is
// installed is judged again by it on what it opened with, and closed if refused (live.go);
// a plain-HTTP connection's later requests are judged by the snapshot running when each
// arrives. Every verdict is a
// policy.Decision, from the decision to the log line, the metrics and `egressfw explain`.
package proxy

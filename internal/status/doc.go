// Package status is `egressfw status`: what a running daemon tells root
// about itself over a local socket, and the bounded recent counts behind it.
//
// Tenant and destination names never become Prometheus labels (a tenant
// chooses the names it connects to: unbounded cardinality). The daemon keeps
// them here instead, per tenant and in fixed memory (Tracker):
//
//   - a ring of 60 one-second buckets of decided connections, denials,
//     would-be denials (report mode) and upstream failures: the last minute;
//   - the most often denied names (and addresses, when there was no name),
//     counted with the Space-Saving algorithm in two generations of
//     TopWindow each: at most TopCapacity names per generation, names cut to
//     MaxNameLen bytes. A name that is evicted and comes back is counted with
//     the evicted count as its possible overcount (Name.Overcount).
//
// One tenant's Tracker holds under 13 KiB: the ring is 1.4 KiB, each of the
// 2 × 16 names at most 253 bytes plus 88 of bookkeeping
// (TestTrackerMemoryBound). A tenant can only fill its own.
//
// The socket (Listen, Serve) is a unix socket, mode 0600 in a directory the
// daemon creates 0700 when it is missing (under systemd the service's
// RuntimeDirectory, /run/egressfw): only the daemon's own uid and root can
// connect. Serve checks each peer's credentials too (SO_PEERCRED) and
// answers any other uid with an error and no data, so a socket whose mode or
// directory is opened up by mistake still tells no one else. Each connection
// gets one Report as JSON and is closed (Fetch reads it).
package status

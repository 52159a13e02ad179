// Package tproxy holds the kernel-facing parts of egressfw's data path:
// transparent (TPROXY) listener sockets, recovery of a connection's original
// destination, a marked happy-eyeballs dialer that connects only to addresses
// it is given, and the splice(2)-based byte pump between a client and its
// upstream.
//
// The package is a leaf: it knows nothing about tenants, policy or names. The
// daemon maps listener ports to tenants, decides which addresses may be dialed
// and in which order, and interprets the errors returned here.
package tproxy

// Package dnsfront is egressfw's DNS server for tenants. The nftables rules
// redirect every tenant packet to port 53, UDP and TCP, IPv4 and IPv6,
// whatever address it was sent to, to the tenant's own DNS listener port,
// so the listener a query arrives on is the tenant: the kernel says who
// asks, never the packet. dnsfront reads the query, lets a Decider (the
// proxy, which holds the policy and egressfw's resolver) decide it, and
// replies from the address the tenant queried (the kernel's NAT maps the
// reply back; conntrack gives the original destination for the log).
//
// Messages from tenants are parsed by hand, bounds-checked and without
// allocation (wire.go): one question of class IN, opcode QUERY, at most
// one additional record which must be an OPT, at most MaxQuerySize bytes;
// anything else gets FORMERR, NOTIMP or BADVERS, or no reply at all
// (responses, fragments of headers). A UDP reply never exceeds the
// client's EDNS payload size (512 without EDNS, at most 1232): a larger
// answer is sent without records and with TC set, and the client asks
// again over TCP, where connections are bounded in number, idle time and
// queries. HTTPS and SVCB answers are post-processed per decision (Strip):
// ech removed by default, QUIC-only ALPN values while UDP 443 is denied.
//
// egressfw refuses a name with NXDOMAIN, the answer it gives a name that
// does not exist or whose addresses are internal, so every refusal is
// alike, as the 403 page's minimal mode makes them; Decision.Tell adds the
// reason as an Extended DNS Error when the operator wants it told.
//
// The package is a leaf: it knows no policy, tenant names or resolver.
package dnsfront

// Package nft programs egressfw's kernel side: one nftables table of its own
// (family inet, default "egressfw") plus the policy routing that loops
// intercepted connections back to the local transparent listeners. It uses
// netlink only (google/nftables, vishvananda/netlink), never the nft or ip
// binaries, and never touches another owner's tables, chains, sets, rules
// or routes.
//
// # Packet path
//
// Output (type route, priority mangle), for locally generated packets:
//
//  1. packets carrying the bypass mark (egressfw's own upstream sockets,
//     SO_MARK) are accepted untouched;
//  2. packets of an intercepted flow in the original direction (ct mark
//     slot bits nonzero) get the intercept mark again, so every packet of
//     the flow is routed to lo;
//  3. ct state established,related is accepted;
//  4. tenants are looked up in verdict maps: `socket cgroupv2 level L vmap
//     @cgroup_lL` for each cgroup depth L in use, deepest first, then
//     `meta skuid vmap @uids`. A hit jumps to the tenant's chain tenant_SLOT.
//     Everyone else falls through and is accepted.
//
// A tenant chain sets, for new TCP to an intercept port, the ct mark slot
// bits (CtMarkMask) to the tenant's Slot and the packet mark bits
// (MarkMask) to InterceptMark, keeping all other bits. It then accepts the
// tenant's allow_direct destinations and otherwise goes to the shared deny
// chain (TCP reset, else ICMP admin-prohibited) or, in report mode, counts
// and accepts.
//
// The route chain re-routes the marked packet: `ip rule fwmark
// InterceptMark/MarkMask lookup RouteTable pref RulePriority` (IPv4 and
// IPv6) selects a table whose only routes are `local 0.0.0.0/0 dev lo` and
// `local ::/0 dev lo`. The packet loops through lo into prerouting (filter,
// priority mangle) where, still carrying the mark, it is TPROXYed to
// 127.0.0.1 or [::1] on the port found by `ct mark & CtMarkMask` in map
// @tproxy_ports: each tenant has its own listener port, so the listener
// knows the tenant from the port it accepted on. The kernel keeps the
// conntrack entry (and its mark) attached to the skb across the loopback
// transmit; the traffic tests verify this on the running kernel (6.18).
// Intercepted packets that find no listener (daemon stopped, no map entry)
// are reset in prerouting, so clients fail fast: the rules stay when the
// process dies and traffic fails closed. No sysctl is changed.
//
// Input (filter, priority filter) rejects TCP to a listener port that was
// not DNATed: TPROXY keeps the original destination port, so anything that
// reaches a listener port arrived directly.
//
// # Cgroups
//
// nftables resolves a cgroup path to its id only when a rule is loaded,
// which breaks when the cgroup is re-created. The table therefore holds
// cgroup ids (the cgroup directory's inode number) in the per-level maps,
// filled by the caller: Apply takes the current ids, and SetCgroupIDs
// updates the map elements in one small batch without replacing the table.
// A configured cgroup that does not exist yet simply has no element.
//
// # Atomicity
//
// Apply replaces the whole table in one netlink batch: add table (a no-op if
// present), delete it, add it with every set, chain, element and rule. The
// kernel commits the batch as one transaction, so there is never a moment
// with no or half a ruleset.
//
// # Extension points
//
// Forwarded tenants (containers behind a bridge) are a later addition: they
// would be matched by iifname and source prefix in a nat prerouting chain of
// this table and redirected to the listener port, arriving with ct status
// dnat, which the input chain already lets through. The slot-in-ct-mark and
// port-map design is shared with that path.
package nft

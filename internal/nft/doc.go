// Package nft programs egressfw's kernel side: one nftables table of its own
// (family inet, default "egressfw") plus the policy routing that loops
// intercepted connections back to the local transparent listeners. It uses
// netlink only (google/nftables, vishvananda/netlink), never the nft or ip
// binaries, and never touches another owner's tables, chains, sets, rules
// or routes. Its Manager applies, updates, watches and restores what the
// packages below it describe:
//
//   - nftspec: the firewall the daemon asks for (Spec, Tenant, Container)
//     and Validate; no nftables;
//   - rules: the table a Spec makes, as data (every set, chain and rule
//     with the words nft prints for it), and Render;
//   - batch: the transport; google/nftables encodes every message, and a
//     batch is sent on a netlink socket of its own with one
//     acknowledgement for the whole transaction instead of an
//     acknowledgement and a rule echo per message, which made applying
//     1,000 tenants 2-3x faster;
//   - route: the policy routing (rtnetlink);
//   - events: the kernel's change notifications, for the watch.
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
//     `meta skuid vmap @uids`, an interval map in which a tenant's uids and
//     uid ranges (sub-uids) cost one element each (rules/uids.go). A hit
//     jumps to the tenant's chain tenant_SLOT.
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
// Apply changes the table in one netlink batch, which the kernel commits as
// one transaction, and it keeps the table, its base chains and every chain
// and set both rulesets have: the batch flushes the rules of the base
// chains and of the other chains whose rules change and re-adds them,
// flushes the kept sets and maps and refills them, and adds or deletes only
// the objects that appear, disappear or change definition. A chain whose
// rules stay the same is not touched at all (keep.go says how that is known
// and what it costs). Replacing the table as a whole (delete table + add
// table in one batch) is atomic for netlink but not for packets, on this
// kernel (6.18) as on earlier ones:
//
//   - the new table's base chains are hooked when the batch is prepared and
//     the old ones unhooked only late in the commit, after the generation
//     switch, so a packet meets two chains on one hook, each evaluated in
//     the generation current when it starts (the old chain keeps its rules
//     in the new generation). Hooked in the order new, old, a packet can
//     see the new chain still empty and then the old chain, whose maps are
//     deleted: their elements are inactive in the new generation, so the
//     lookups miss. In the traffic test an intercepted SYN went out
//     unmarked (timeout) or a tproxy port lookup missed and the fail-closed
//     reset in prerouting fired, about one run in three;
//   - set lookups use the generation current at the lookup, not the one the
//     chain started in, so a deleted map misses even for a packet that
//     entered the old chain before the switch.
//
// With the objects kept there is one base chain per hook, a chain
// evaluation runs one generation's rules, and a flushed and refilled key
// is found, old or new element, at every moment. What a packet can see
// during a replacement is therefore: in each hook, the old or the new
// rules, each lookup answered from the old or the new elements. Traffic
// both rulesets treat alike (the same key to the same tenant, slot and
// port) is never disturbed; TestAtomicReplace checks that with packets. A
// packet whose treatment changes may meet a mix of old rules and new
// elements for a moment, e.g. jump, by a new map entry, to a tenant's chain
// and run its old rules. The chains of new tenants are added, with their
// rules, in a small batch of their own just before (nothing refers to them
// yet), so such a jump never finds a chain that is empty in the old
// generation, which would let the packet fall through unmarked.
//
// A table this code cannot update in place (left by another version or
// edited by hand in a way the batch trips over) is rebuilt whole, with the
// transient effects above. A verdict map of ours with a foreign key type
// of the same length is kept, as google/nftables cannot read that type.
// After an in-place update the table's contents equal Render's, but a set
// or chain added by it is listed after the existing ones; a table built
// from scratch lists them in Render's order.
//
// # Forwarded tenants
//
// Containers, pods and VMs behind a bridge are tenants by ingress interface (or
// by source range, reverse-path checked). Their packets are checked in
// prerouting (spoofed sources dropped), REDIRECTed to the tenant's listener
// port in a nat prerouting chain of this table (priority dstnat - 10, so before
// Docker's and kube-proxy's), arriving with ct status dnat, which the input
// chain lets through, and otherwise rejected in the forward and input chains
// unless allow_direct matches. rules/forward.go says why REDIRECT and not
// TPROXY (br_netfilter) and lists every rule. The slot and port design is
// shared with local tenants; a forwarded flow the rules accept carries the
// tenant's slot in its ct mark, and only such an established flow passes
// without being judged again (rules/admit.go).
//
// # Container identity
//
// With Spec.Containers, Apply also installs a table of family bridge of the
// same name that binds each container the caller identifies (SetContainers: its
// bridge port, MAC and addresses, and the slot of a labelled tenant) and drops
// what a container sends as another, in every protocol (rules/bridge.go). A
// labelled container's packets carry its tenant's slot in the packet mark
// (ContainerMarkMask) into the inet hooks, where it picks the tenant before any
// interface tenant, and each bridged flow keeps the identity it was opened with
// in the ct mark (ContainerCtMask): a packet of another identity on it is
// dropped (rules/labelled.go). A binding update is one small transaction of set
// elements; Apply rewrites the bridge table in place in the same transaction as
// the inet table.
//
// # Restoring
//
// Another program can remove or edit the table and the routing at any
// time (nft flush ruleset, systemctl reload nftables, ip rule del).
// Manager.Watch follows the kernel's change notifications and puts back
// what the last Apply installed (the bridge table and its bindings too),
// telling egressfw's own transactions apart by the netlink port id the
// kernel stamps on each notification (watch.go, package events); a deleted
// table is rebuilt from a batch encoded ahead of time (spare.go).
package nft

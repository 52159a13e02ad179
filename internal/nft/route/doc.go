// Package route installs, checks and removes the policy routing that
// loops intercept-marked packets back to lo (see package nft's doc, Packet
// path): per family, an ip rule `fwmark Mark/Mask lookup Table pref
// Priority` and the route table's only route, `local default dev lo`. It
// speaks rtnetlink (vishvananda/netlink), never the ip binary, and touches
// only the rules at its priority that look up its table and the routes in
// that table.
package route

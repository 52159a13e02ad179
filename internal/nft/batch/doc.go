// Package batch sends nftables changes to the kernel as one transaction on
// a netlink socket of its own, with a single acknowledgement: the
// transport under package nft's Manager. google/nftables encodes the
// messages (Batcher.Queue); Commit sends them with no echo and an
// acknowledgement for the last message only, which made applying 1,000
// tenants 2-3x faster than google/nftables' own Flush. The batcher also
// tracks the ruleset generation around its commits (Unchanged: has anyone
// else committed since?), and takes the watch's notification socket out of
// its group while its own transaction runs (SetMonitor).
package batch

// Package events reads the kernel's change notifications for package
// nft's watch. The kernel multicasts every committed nftables change to
// the NFNLGRP_NFTABLES group of the netfilter netlink family, one message
// per object added or deleted, each carrying in its header the netlink
// port id of the socket that sent the transaction, and closes each
// transaction with NFT_MSG_NEWGEN (generation id, pid and name of the
// committing process). Routing rules and routes are multicast the same
// way on rtnetlink's RTNLGRP_IPV{4,6}_{RULE,ROUTE} groups. ParseNft and
// ParseRoute read the few fields the watch needs and nothing else: the
// kernel sends whole rules and elements, which egressfw never decodes
// here; a malformed message is not one (ok is false), never a panic
// (FuzzParseEvents). Log sums up the changes for a log line.
package events

// Package rules turns an nftspec.Spec into egressfw's nftables table as
// data (Build, and BuildBridge for the bridge table of container
// identity): every set, map, chain and rule, each rule with the words nft
// prints for it, so the one value gives both the netlink messages package
// nft sends and the text Render prints. It does no kernel I/O; package
// nft's Manager installs what it builds, and the kernel tests there check
// it against the kernel's own listing (testdata/*.golden). Package nft's
// doc describes the packet path the rules make. Where to look: local
// tenants, the base chains and the deny chain in ruleset.go (uids.go for
// the uid map), forwarded tenants in forward.go, members.go and admit.go,
// tenant DNS in dns.go, container identity in bridge.go, containers.go
// and labelled.go, nft expressions in exprs.go, printing in render.go.
package rules

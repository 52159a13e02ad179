// Package netnstest is the kit egressfw's kernel tests share: the tests of
// internal/nft and internal/tproxy and the end-to-end suite in test/netns.
// Only tests import it; it is not linked into the egressfw binary.
//
// It creates network namespaces with names unique to the process
// (UniqueName: a prefix, the pid and a sequence number, so concurrent runs
// never collide) and deletes them when the test ends (New); opens their
// fd for nftables.WithNetNSFd and netlink.NewHandleAt (NS.Fd); runs
// commands inside them (NS.Cmd, NS.Run, NS.IP), Go functions on a thread
// switched into them (NS.Do) or a whole test in a re-executed test binary
// whose every thread is inside (InNetns); connects them with veth pairs
// (Veth) and gives them black-hole addresses (NS.Blackhole). It creates and
// removes cgroups under the cgroup2 mount found in /proc/self/mountinfo
// (CgroupRoot, NewCgroup, RemoveCgroupTree, IntoCgroup), and removes the
// namespaces, cgroups and temporary directories a crashed run left behind
// (RemoveStale: those whose creating process is gone).
//
// Everything needs root; as non-root the tests skip, saying so (NeedRoot).
package netnstest

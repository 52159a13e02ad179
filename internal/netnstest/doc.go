// Package netnstest is the kit egressfw's kernel tests share: the tests of
// internal/nft and internal/tproxy and the end-to-end suite in test/netns.
// Only tests import it; it is not linked into the egressfw binary.
//
// Network namespaces get names unique to the process (UniqueName: a
// prefix, the pid and a sequence number, so concurrent runs never
// collide); New creates one with lo up and deletes it when the test ends,
// failing the test if a process is still inside. NS.Fd is an open fd of it
// for nftables.WithNetNSFd and netlink.NewHandleAt. Commands run inside a
// namespace by name or path with Cmd (nsenter, which leaves /sys alone),
// NS.Run and NS.IP; a Go function runs on a thread switched into it with
// NS.Do; a whole test runs in a re-executed test binary whose every thread
// is inside with InNetns. Veth connects two namespaces, NS.Blackhole gives
// one addresses whose packets vanish.
//
// Cgroups live under the cgroup2 mount found in /proc/self/mountinfo
// (CgroupRoot; on a hybrid host it is not /sys/fs/cgroup): NewCgroup
// creates a tree that is removed, its processes killed, when the test ends
// (RemoveCgroupTree, KillCgroup), and IntoCgroup starts a command inside
// one at clone time. RemoveStale, called from TestMain, removes the
// namespaces, cgroups and temporary directories a crashed run left behind:
// those whose name carries the pid of a process that is gone.
//
// Everything needs root; as non-root the tests skip, saying so (NeedRoot).
package netnstest

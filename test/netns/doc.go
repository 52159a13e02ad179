// Package netns is egressfw's end-to-end test suite. Its tests build real
// topologies from network namespaces and veth pairs (a "host" namespace
// where egressfw and its tenants run, a "public" one with documentation
// addresses and an "internal" one with private services, cloud metadata and
// the split-horizon DNS), start the built egressfw binary with `run
// --config` as the service would, put real clients (curl, Go, Python,
// chromium) into tenant cgroups or uids, and assert on what the clients saw,
// what the servers counted and what egressfw logged. Everything a test
// creates it removes. The tests need root and skip otherwise.
//
// The helper program test/netns/testsrv provides the servers and the Go
// clients; the tests build it and egressfw once per run (EGRESSFW_BIN names
// a prebuilt egressfw instead).
package netns

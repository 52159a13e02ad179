// Package proxytest runs the data path's surroundings in-process for the
// tests of internal/proxy and internal/daemon: a Kernel that hands out
// plain loopback sockets and says where each connection was going, a Net
// whose dialer maps the test network's documentation and internal
// addresses onto loopback servers (counting every address it is asked to
// dial), and Logs that decode the connection log lines. It is test support
// and is never linked into the egressfw binary.
package proxytest

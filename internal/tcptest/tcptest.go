// Package tcptest gives tests both ends of a real loopback TCP connection,
// for code that needs a *net.TCPConn (splice, socket options, SO_LINGER
// resets) where net.Pipe will not do.
package tcptest

import (
	"net"
	"testing"
)

// Pair returns both ends of a fresh loopback TCP connection; both are
// closed when the test ends.
func Pair(t testing.TB) (dialed, accepted *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

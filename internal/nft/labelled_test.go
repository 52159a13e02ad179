package nft

import (
	"testing"
	"time"
)

// TestLabelledRedirect: a labelled container's intercepted TCP is
// redirected only to a transparent socket (egressfw's listener) on its
// tenant's port: a plain socket of a local user there (egressfw down) gets
// nothing and the container's SYN is reset, in IPv4 and IPv6.
func TestLabelledRedirect(t *testing.T) {
	tp := newCtrTopo(t, true)
	a := tp.container(t, "pa", 10)
	if err := tp.m.SetContainers([]Container{a.identity(2)}); err != nil {
		t.Fatal(err)
	}
	squatter := acceptCount(listenTCP(t, tp.host, ":15002", false))
	for _, raddr := range []string{"198.51.100.10:80", "[2001:db8:1::10]:443"} {
		start := time.Now()
		if got := dialFrom(t, a.ns, "tcp", "", raddr); got != "refused" {
			t.Errorf("labelled container to %s with a plain socket on its port = %s, want refused", raddr, got)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refused after %v, want a reset at once", d)
		}
	}
	nothingOn(t, "the plain socket on the labelled tenant's port", squatter)
}

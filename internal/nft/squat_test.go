package nft

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"golang.org/x/sys/unix"
)

// listenTCP opens a listener on addr inside ns, transparent
// (IP_TRANSPARENT/IPV6_TRANSPARENT, as egressfw's own) or plain (as any
// local user can open one), and closes it at test end.
func listenTCP(t *testing.T, ns *testNetns, addr string, transparent bool) net.Listener {
	t.Helper()
	network := "tcp4"
	switch {
	case strings.HasPrefix(addr, "["):
		network = "tcp6"
	case strings.HasPrefix(addr, ":"): // both families
		network = "tcp"
	}
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		if !transparent {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			if network == "tcp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var ln net.Listener
	var err error
	ns.Do(t, func() { ln, err = lc.Listen(context.Background(), network, addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// acceptCount counts the connections ln accepts (and closes them).
func acceptCount(ln net.Listener) <-chan string {
	ch := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	return ch
}

// echo answers every byte on every connection ln accepts.
func echo(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
}

// echoFrom sends n bytes from ns to raddr and reads them back: every
// packet after the handshake must reach the same socket.
func echoFrom(t *testing.T, ns *testNetns, raddr string, n int) error {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp", raddr, time.Second) })
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	out := bytes.Repeat([]byte("0123456789abcdef"), n/16)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(out); werr <- err }()
	in := make([]byte, len(out))
	if _, err := io.ReadFull(c, in); err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(in, out) {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// TestListenerPortSquatter: while egressfw is down (no transparent
// listener), a local user's plain socket on a tenant's listener port must
// receive nothing. REDIRECT (forwarded tenants) would deliver to any
// socket: the nat chain redirects only when a transparent socket listens
// on the target and resets the SYN otherwise, and the input chain drops
// any other DNATed packet (another tool's DNAT to the port) for a socket
// that is not transparent. TPROXY (local tenants) assigns only transparent
// sockets. With egressfw's (transparent) listeners, a redirected
// connection carries 1 MB each way: the handshake's request socket and the
// accepted child both count as transparent, with early demux (which finds
// the socket before the input hook) and without. All of it with
// br_netfilter on (bridged frames, Docker) and off (routed).
func TestListenerPortSquatter(t *testing.T) {
	f := newFwdTopo(t)
	spec := nftspec.DefaultSpec()
	spec.Tenants = []nftspec.Tenant{
		{Name: "containers", Slot: 1, ListenerPort: 15001, Interfaces: []string{"br-*"},
			Sources: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("fd00:17::/64")}},
		{Name: "local", Slot: 2, ListenerPort: 15002, UIDs: []uint32{4242}},
	}
	if err := f.host.manager(t).Apply(spec, nil); err != nil {
		t.Fatal(err)
	}
	// Another tool's DNAT to a listener port (not ours: no transparency
	// check at nat time), reachable from the public side.
	f.host.nftScript(t, `table ip foreign {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 9999 redirect to :15001
	}
}`)
	for _, v := range []struct{ brnf, demux string }{{"1", "1"}, {"0", "1"}, {"1", "0"}} {
		f.host.Run(t, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables="+v.brnf, "net.bridge.bridge-nf-call-ip6tables="+v.brnf,
			"net.ipv4.ip_early_demux="+v.demux)
		t.Run(fmt.Sprintf("br_netfilter=%s early_demux=%s", v.brnf, v.demux), func(t *testing.T) { squatCases(t, f) })
	}
}

func squatCases(t *testing.T, f *fwdTopo) {
	for _, squat := range []struct{ name, v4, v6 string }{
		{"wildcard", "0.0.0.0", "[::]"},
		{"loopback", "127.0.0.1", "[::1]"},
	} {
		t.Run("squatter on "+squat.name, func(t *testing.T) {
			var got []<-chan string
			var lns []net.Listener
			for _, port := range []string{"15001", "15002"} {
				for _, a := range []string{squat.v4, squat.v6} {
					ln := listenTCP(t, f.host, a+":"+port, false)
					lns = append(lns, ln)
					got = append(got, acceptCount(ln))
				}
			}
			for _, raddr := range []string{"198.51.100.10:80", "[2001:db8:1::10]:443"} {
				if r := dialFrom(t, f.ctr, "tcp", "", raddr); r != "refused" {
					t.Errorf("container to %s with a squatter on the listener port: %s, want refused (reset)", raddr, r)
				}
				if r := runClient(t, f.host, client{fsuid: 4242}, "tcp", raddr, "squat"); !strings.Contains(r, "connection refused") {
					t.Errorf("local tenant to %s with a squatter on the listener port: %s, want connection refused", raddr, r)
				}
			}
			if squat.name == "wildcard" {
				if r := dialFrom(t, f.pub, "tcp", "", "198.51.100.1:9999"); r != "timeout" {
					t.Errorf("another tool's DNAT to the listener port with a squatter on it: %s, want timeout (dropped)", r)
				}
			}
			for i, ch := range got {
				nothingOn(t, "squatter on "+lns[i].Addr().String(), ch)
			}
			for _, ln := range lns {
				ln.Close()
			}
		})
	}
	t.Run("egressfw's transparent listeners", func(t *testing.T) {
		var lns []net.Listener
		for _, a := range []string{"0.0.0.0:15001", "[::]:15001", "127.0.0.1:15002", "[::1]:15002"} {
			lns = append(lns, listenTCP(t, f.host, a, true))
			echo(lns[len(lns)-1])
		}
		for _, raddr := range []string{"198.51.100.10:80", "[2001:db8:1::10]:443"} {
			if err := echoFrom(t, f.ctr, raddr, 1<<20); err != nil {
				t.Errorf("container to %s through a transparent listener: %v, want 1 MB echoed", raddr, err)
			}
			if r := runClient(t, f.host, client{fsuid: 4242}, "tcp", raddr, "ok"); !strings.HasPrefix(r, "OK") {
				t.Errorf("local tenant to %s through a transparent listener: %s, want a connection", raddr, r)
			}
		}
		if err := echoFrom(t, f.pub, "198.51.100.1:9999", 1<<16); err != nil {
			t.Errorf("another tool's DNAT to a transparent listener: %v, want it echoed", err)
		}
		for _, ln := range lns {
			ln.Close()
		}
	})
	t.Run("egressfw down", func(t *testing.T) {
		for _, raddr := range []string{"198.51.100.10:80", "[2001:db8:1::10]:443"} {
			if r := dialFrom(t, f.ctr, "tcp", "", raddr); r != "refused" {
				t.Errorf("container to %s with no listener: %s, want refused (reset)", raddr, r)
			}
		}
		if r := dialFrom(t, f.pub, "tcp", "", "198.51.100.1:9999"); r != "refused" {
			t.Errorf("another tool's DNAT to the listener port, no socket: %s, want refused (the stack's reset)", r)
		}
	})
}

package nft

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"golang.org/x/sys/unix"
)

// TestReusedAddressCannotRideFlow: labelled container A has a connection
// through its tenant's listener; A is removed and a new, unlabelled
// container C on another port gets A's address and MAC, as Docker hands a
// freed address to the next container. C continues A's connection exactly
// (TCP repair gives it A's sequence numbers, as if it had watched A's
// traffic): the conntrack entry of A's flow is still there (the test turns
// SetContainers' conntrack hygiene off, so the identity check alone is
// tested), and the input chain passes every packet of a redirected flow.
// The listener must receive nothing from C.
func TestReusedAddressCannotRideFlow(t *testing.T) {
	for _, mode := range brnfModes {
		t.Run(mode.name, func(t *testing.T) {
			tp := newCtrTopo(t, mode.on)
			tp.m.keepFlows = true
			ln := listenTCP(t, tp.host, ":15002", true)
			a, b := tp.container(t, "pa", 10), tp.container(t, "pb", 20)
			if err := tp.m.SetContainers([]nftspec.Container{a.identity(2), b.identity(0)}); err != nil {
				t.Fatal(err)
			}
			// plain segments: no options C would have to repeat
			a.ns.Run(t, "sysctl", "-qw", "net.ipv4.tcp_timestamps=0", "net.ipv4.tcp_window_scaling=0", "net.ipv4.tcp_sack=0")
			var conn *net.TCPConn
			a.ns.Do(t, func() {
				c, err := net.DialTimeout("tcp4", "198.51.100.10:80", 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				conn = c.(*net.TCPConn)
			})
			t.Cleanup(func() { conn.Close() })
			srv, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			if got := exchange(t, conn, srv, "from A"); got != "from A" {
				t.Fatalf("A's own connection carried %q, want %q", got, "from A")
			}
			snd, rcv := repairSeqs(t, a.ns, conn)
			local := netip.MustParseAddrPort(conn.LocalAddr().String())

			tp.host.Run(t, "ip", "link", "del", "pa") // A is gone, its veth with it
			c := tp.container(t, "pc", 10)
			if err := tp.m.SetContainers([]nftspec.Container{b.identity(0), c.identity(0)}); err != nil {
				t.Fatal(err)
			}
			resume(t, c.ns, local, netip.MustParseAddrPort("198.51.100.10:80"), snd, rcv, "from C")
			srv.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 64)
			if n, err := srv.Read(buf); n > 0 {
				t.Fatalf("C rode A's flow: the labelled tenant's listener read %q (err %v)", buf[:n], err)
			}
		})
	}
}

// TCP_REPAIR_QUEUE values (linux/tcp.h), which x/sys does not name.
const (
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// exchange writes msg on c and reads it on srv.
func exchange(t *testing.T, c *net.TCPConn, srv net.Conn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, _ := srv.Read(buf)
	return string(buf[:n])
}

// repairSeqs puts c in TCP repair mode (it sends nothing more, also when
// closed) and returns its next send and receive sequence numbers.
func repairSeqs(t *testing.T, ns *testNetns, c *net.TCPConn) (snd, rcv uint32) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	ns.Do(t, func() {
		err = raw.Control(func(fd uintptr) {
			f := int(fd)
			serr = unix.SetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_REPAIR, 1)
			for _, q := range []struct {
				queue int
				seq   *uint32
			}{{tcpSendQueue, &snd}, {tcpRecvQueue, &rcv}} {
				if serr == nil {
					serr = unix.SetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q.queue)
				}
				if serr == nil {
					var v int
					v, serr = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
					*q.seq = uint32(v)
				}
			}
		})
	})
	if err != nil || serr != nil {
		t.Fatalf("TCP repair of A's socket: %v %v", err, serr)
	}
	return snd, rcv
}

// resume opens, inside ns, a socket that continues the connection from
// local to remote at the given sequence numbers, and writes msg on it.
func resume(t *testing.T, ns *testNetns, local, remote netip.AddrPort, snd, rcv uint32, msg string) {
	t.Helper()
	ns.Do(t, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		set := func(opt, v int) {
			if err == nil {
				err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, opt, v)
			}
		}
		set(unix.TCP_REPAIR, 1)
		set(unix.TCP_REPAIR_QUEUE, tcpSendQueue)
		set(unix.TCP_QUEUE_SEQ, int(snd))
		set(unix.TCP_REPAIR_QUEUE, tcpRecvQueue)
		set(unix.TCP_QUEUE_SEQ, int(rcv))
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrInet4{Addr: local.Addr().As4(), Port: int(local.Port())})
		}
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())})
		}
		if err == nil { // MSS 1460 (struct tcp_repair_opt { u32 code; u32 val; })
			opt := binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, 2), 1460)
			err = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, string(opt))
		}
		set(unix.TCP_REPAIR, 0)
		if err == nil {
			_, err = unix.Write(fd, []byte(msg))
		}
		if err != nil {
			t.Fatalf("resume A's connection in C: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // let the segment (and a retransmission) go
	})
}

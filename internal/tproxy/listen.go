package tproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Listen opens a transparent TCP listener on addr for TPROXY-delivered
// connections. The socket gets IP_TRANSPARENT (IPV6_TRANSPARENT for IPv6),
// SO_REUSEADDR and, for IPv6, IPV6_V6ONLY so that 127.0.0.1 and ::1 listeners
// on the same port coexist. It needs CAP_NET_ADMIN. The backlog is the Go
// default (net.core.somaxconn).
//
// Connections accepted from it keep the client's original destination as
// their local address; see OriginalDst.
//
// If another socket holds the port, the error (errors.Is EADDRINUSE) says
// so and names the holders' uids and addresses.
func Listen(ctx context.Context, addr netip.AddrPort) (*net.TCPListener, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.IsValid() {
		return nil, fmt.Errorf("tproxy listen: invalid address %v", addr)
	}
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6"
	}
	// KeepAlive -1: accepted connections get no TCP keep-alive (see
	// Dialer.dialOne: the splice's idle timeout covers dead peers).
	lc := net.ListenConfig{Control: transparentControl(addr), KeepAlive: -1}
	// Plain TCP, not Go's default MPTCP listener: what TPROXY delivers and
	// the tests cover, and cheaper to open (a reload opens thousands).
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, network, addr.String())
	if err != nil {
		var se *sockoptError
		if errors.As(err, &se) {
			return nil, se
		}
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, &portHeldError{addr: addr, holders: portHolders(addr.Port())}
		}
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return nil, fmt.Errorf("tproxy listen on %s: %w", addr, err)
	}
	return ln.(*net.TCPListener), nil
}

// portHeldError reports a listener port another socket holds, naming the
// holders found so that an operator can act (while egressfw is down any
// local user may bind its ports; nothing intercepted reaches such a
// socket, but egressfw cannot start until the port is free).
type portHeldError struct {
	addr    netip.AddrPort
	holders []string
}

func (e *portHeldError) Error() string {
	who := ""
	if len(e.holders) > 0 {
		who = " (" + strings.Join(e.holders, ", ") + ")"
	}
	return fmt.Sprintf("tproxy listen on %s: port %d is held by another process%s; "+
		"only egressfw may listen on its listener ports: stop that process (ss -ltnpe 'sport = :%d' names it) "+
		"or move listener.port: %v", e.addr, e.addr.Port(), who, e.addr.Port(), unix.EADDRINUSE)
}

func (e *portHeldError) Unwrap() error { return unix.EADDRINUSE }

// portHolders describes the TCP sockets bound to port (listening or
// bound only), by owner uid and address, as sock_diag reports them; none
// if the query fails.
func portHolders(port uint16) []string {
	var out []string
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := netlink.SocketDiagTCP(fam)
		if err != nil {
			continue
		}
		for _, s := range socks {
			if s.ID.SourcePort != port || (s.State != tcpListen && s.State != tcpClose) {
				continue
			}
			ap := netip.AddrPortFrom(addrOf(s.ID.Source), port)
			state := "listening on"
			if s.State == tcpClose {
				state = "bound to"
			}
			out = append(out, fmt.Sprintf("uid %d %s %s", s.UID, state, ap))
		}
	}
	return out
}

// TCP states as sock_diag reports them (include/net/tcp_states.h).
const (
	tcpClose  = 7
	tcpListen = 10
)

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// sockoptError reports a failed setsockopt with the option, its value and the
// socket address it was for, plus a hint when the cause is a missing
// capability.
type sockoptError struct {
	opt  string
	addr string
	err  error
}

func (e *sockoptError) Error() string {
	hint := ""
	if errors.Is(e.err, unix.EPERM) {
		hint = " (needs CAP_NET_ADMIN)"
	}
	return fmt.Sprintf("set %s on %s: %v%s", e.opt, e.addr, e.err, hint)
}

func (e *sockoptError) Unwrap() error { return e.err }

type sockopt struct {
	name       string
	level, opt int
	val        int
}

// transparentControl returns the net.ListenConfig.Control hook that makes a
// listener transparent. It runs after socket(2) and before bind(2).
func transparentControl(addr netip.AddrPort) func(string, string, syscall.RawConn) error {
	opts := []sockopt{
		{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{"IP_TRANSPARENT", unix.SOL_IP, unix.IP_TRANSPARENT, 1},
	}
	if addr.Addr().Is6() {
		opts = []sockopt{
			{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
			{"IPV6_V6ONLY", unix.SOL_IPV6, unix.IPV6_V6ONLY, 1},
			{"IPV6_TRANSPARENT", unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1},
		}
	}
	return func(_, _ string, rc syscall.RawConn) error {
		return setSockopts(rc, "", addr.String(), opts)
	}
}

// setSockopts sets opts on the socket, stopping at the first that fails;
// its error names the option and the socket (what + addr, joined only on
// failure).
func setSockopts(rc syscall.RawConn, what, addr string, opts []sockopt) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		for _, o := range opts {
			if err := unix.SetsockoptInt(int(fd), o.level, o.opt, o.val); err != nil {
				serr = &sockoptError{opt: o.name, addr: what + addr, err: err}
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("access socket for %s%s: %w", what, addr, err)
	}
	return serr
}

// OriginalDst returns the destination the client originally connected to, for
// a connection accepted from a Listen listener. TPROXY does not rewrite
// addresses, so this is the accepted socket's local address (IPv4-mapped IPv6
// addresses are unmapped). It returns the zero AddrPort if c has no TCP local
// address.
func OriginalDst(c *net.TCPConn) netip.AddrPort {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := la.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

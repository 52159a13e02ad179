package resolver

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLookupTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name    string
		servers int
	}{
		{name: "one silent server", servers: 1},
		{name: "three silent servers share the budget", servers: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var servers []string
			for range tc.servers {
				servers = append(servers, silentServer(t))
			}
			r, _ := newTestResolver(t, servers, func(c *Config) { c.Timeout = timeout })
			start := time.Now()
			_, err := r.Lookup(context.Background(), "slow.example")
			elapsed := time.Since(start)
			checkLookupError(t, err, ErrTimeout, -1)
			if elapsed < timeout-10*time.Millisecond || elapsed > timeout+200*time.Millisecond {
				t.Errorf("took %v, want about %v", elapsed, timeout)
			}
		})
	}
}

func TestLookupFallback(t *testing.T) {
	good := zone(t, dns.RcodeSuccess, "fb.example. 60 IN A 192.0.2.7")
	tests := []struct {
		name       string
		first      func(t *testing.T) (addr string, srv *testServer)
		wantErr    error
		wantSecond int // A queries the second server should see
	}{
		{name: "first silent", first: func(t *testing.T) (string, *testServer) { return silentServer(t), nil }, wantSecond: 1},
		{name: "first port closed", first: func(t *testing.T) (string, *testServer) { return closedPort(t), nil }, wantSecond: 1},
		{name: "first SERVFAIL", first: func(t *testing.T) (string, *testServer) {
			s := startServer(t, "127.0.0.1", zone(t, dns.RcodeServerFailure))
			return s.addr, s
		}, wantSecond: 1},
		{name: "first NXDOMAIN is final", first: func(t *testing.T) (string, *testServer) {
			s := startServer(t, "127.0.0.1", zone(t, dns.RcodeNameError))
			return s.addr, s
		}, wantErr: ErrNXDomain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			firstAddr, first := tc.first(t)
			second := startServer(t, "127.0.0.1", good)
			r, _ := newTestResolver(t, []string{firstAddr, second.addr}, nil)
			res, err := r.Lookup(context.Background(), "fb.example")
			if tc.wantErr != nil {
				checkLookupError(t, err, tc.wantErr, -1)
			} else if err != nil || res.Server != second.addr || addrStrings(res) != "192.0.2.7" {
				t.Errorf("got %+v, %v; want 192.0.2.7 from %s", res, err, second.addr)
			}
			if got := second.queries(dns.TypeA); got != tc.wantSecond {
				t.Errorf("second server saw %d A queries, want %d", got, tc.wantSecond)
			}
			if first != nil && first.queries(dns.TypeA) != 1 {
				t.Errorf("first server saw %d A queries, want 1", first.queries(dns.TypeA))
			}
		})
	}
}

func TestLookupTruncationRetriesOverTCP(t *testing.T) {
	full := zone(t, dns.RcodeSuccess,
		"big.example. 60 IN A 192.0.2.1", "big.example. 60 IN AAAA 2001:db8::1")
	tests := []struct {
		name    string
		tcOnUDP bool
		wantTCP int
	}{
		{name: "truncated UDP reply", tcOnUDP: true, wantTCP: 2},
		{name: "complete UDP reply", tcOnUDP: false, wantTCP: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, "127.0.0.1", func(req *dns.Msg, tcp bool) *dns.Msg {
				if tcp || !tc.tcOnUDP {
					return full(req, tcp)
				}
				m := new(dns.Msg).SetReply(req)
				m.Truncated = true
				return m
			})
			r, _ := newTestResolver(t, []string{srv.addr}, nil)
			res, err := r.Lookup(context.Background(), "big.example")
			if err != nil || addrStrings(res) != "192.0.2.1,2001:db8::1" {
				t.Fatalf("got %v, %v", addrStrings(res), err)
			}
			if got := srv.tcpQueries(); got != tc.wantTCP {
				t.Errorf("TCP queries = %d, want %d", got, tc.wantTCP)
			}
		})
	}
}

func TestLookupIPv6Server(t *testing.T) {
	if pc, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		pc.Close()
	}
	srv := startServer(t, "::1", zone(t, dns.RcodeSuccess, "v6.example. 60 IN AAAA 2001:db8::6"))
	if !strings.HasPrefix(srv.addr, "[::1]:") {
		t.Fatalf("server address %q is not [::1]:port", srv.addr)
	}
	r, _ := newTestResolver(t, []string{srv.addr}, nil)
	res, err := r.Lookup(context.Background(), "v6.example")
	if err != nil || addrStrings(res) != "2001:db8::6" || res.Server != srv.addr {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestControlHook(t *testing.T) {
	srv := startServer(t, "127.0.0.1", zone(t, dns.RcodeSuccess, "ctl.example. 60 IN A 192.0.2.8"))
	hookErr := errors.New("mark refused")
	tests := []struct {
		name    string
		fail    bool
		wantErr error
	}{
		{name: "hook sees every socket", fail: false},
		{name: "hook failure is a network error", fail: true, wantErr: ErrNetwork},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			control := func(network, address string, _ syscall.RawConn) error {
				mu.Lock()
				seen = append(seen, network+" "+address)
				mu.Unlock()
				if tc.fail {
					return hookErr
				}
				return nil
			}
			r, _ := newTestResolver(t, []string{srv.addr}, func(c *Config) { c.Control = control })
			_, err := r.Lookup(context.Background(), "ctl.example")
			if tc.wantErr != nil {
				checkLookupError(t, err, tc.wantErr, -1)
				if !errors.Is(err, hookErr) {
					t.Errorf("err %v does not wrap the hook's error", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 2 || seen[0] != "udp4 "+srv.addr || seen[1] != "udp4 "+srv.addr {
				t.Errorf("hook calls = %q, want two udp4 %s", seen, srv.addr)
			}
		})
	}
}

package resolver

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []string
		attempts int
		wantErr  string
	}{
		{
			name: "systemd stub with search and comments",
			in:   "# generated\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n",
			want: []string{"127.0.0.53:53"},
		},
		{
			name: "IPv4, IPv6, zone, inline comment, attempts",
			in:   "nameserver 192.0.2.53 # primary\nnameserver 2001:db8::53\n\tnameserver   fe80::1%eth0\n; x\noptions timeout:9 attempts:3 rotate\n",
			want: []string{"192.0.2.53:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53"}, attempts: 3,
		},
		{name: "attempts capped", in: "nameserver 192.0.2.1\noptions attempts:50\n", want: []string{"192.0.2.1:53"}, attempts: 5},
		{name: "mapped address unmapped", in: "nameserver ::ffff:192.0.2.1\n", want: []string{"192.0.2.1:53"}},
		{name: "empty", in: "", want: nil},
		{name: "nameserver without address ignored", in: "nameserver\n", want: nil},
		{name: "hostname is an error", in: "nameserver 192.0.2.1\nnameserver dns.example\n", wantErr: `line 2: bad nameserver "dns.example"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := ParseResolvConf(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rc.Servers, tc.want) || rc.Attempts != tc.attempts {
				t.Errorf("got %q attempts %d, want %q attempts %d", rc.Servers, rc.Attempts, tc.want, tc.attempts)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.conf", "nameserver 192.0.2.53\nnameserver 2001:db8::53\noptions attempts:2\n")
	empty := write("empty.conf", "search example.com\n")
	tests := []struct {
		name         string
		mod          func(*Config)
		wantServers  []string
		wantAttempts int
		wantErr      string
	}{
		{name: "explicit servers", mod: func(c *Config) { c.Servers = []string{"192.0.2.1:5353", " [::1]:53 "} },
			wantServers: []string{"192.0.2.1:5353", "[::1]:53"}, wantAttempts: 1},
		{name: "resolv.conf fallback", mod: func(c *Config) { c.ResolvConf = good },
			wantServers: []string{"192.0.2.53:53", "[2001:db8::53]:53"}, wantAttempts: 2},
		{name: "explicit attempts beat resolv.conf", mod: func(c *Config) { c.ResolvConf = good; c.Attempts = 1 },
			wantServers: []string{"192.0.2.53:53", "[2001:db8::53]:53"}, wantAttempts: 1},
		{name: "server without port", mod: func(c *Config) { c.Servers = []string{"192.0.2.1:53", "192.0.2.2"} },
			wantErr: `server 1 "192.0.2.2" is not ip:port`},
		{name: "server hostname", mod: func(c *Config) { c.Servers = []string{"dns.example:53"} },
			wantErr: `server 0 "dns.example:53"`},
		{name: "port 0", mod: func(c *Config) { c.Servers = []string{"192.0.2.1:0"} }, wantErr: "port 0"},
		{name: "resolv.conf without nameservers", mod: func(c *Config) { c.ResolvConf = empty }, wantErr: "no nameserver lines"},
		{name: "resolv.conf missing", mod: func(c *Config) { c.ResolvConf = filepath.Join(dir, "nope") }, wantErr: "no such file"},
		{name: "zero timeout", mod: func(c *Config) { c.Timeout = 0 }, wantErr: "timeout must be positive"},
		{name: "floor above ceiling", mod: func(c *Config) { c.MinTTL = time.Hour }, wantErr: "above max TTL"},
		{name: "negative cache size", mod: func(c *Config) { c.CacheSize = -1 }, wantErr: "cache size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ResolvConf = good
			tc.mod(&cfg)
			r, err := New(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Servers(), tc.wantServers) || r.attempts != tc.wantAttempts {
				t.Errorf("servers %q attempts %d, want %q %d", r.Servers(), r.attempts, tc.wantServers, tc.wantAttempts)
			}
		})
	}
}

func TestCanonicalName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{name: "plain", in: "www.example.com", want: "www.example.com", ok: true},
		{name: "trailing dot and case", in: "WWW.Example.com.", want: "www.example.com", ok: true},
		{name: "underscore and hyphen", in: "_dmarc.my-host.example", want: "_dmarc.my-host.example", ok: true},
		{name: "63-byte label", in: long + ".example", want: long + ".example", ok: true},
		{name: "64-byte label", in: long + "a.example"},
		{name: "254 bytes", in: strings.Repeat("abc.", 63) + "ab"},
		{name: "empty", in: ""},
		{name: "root", in: "."},
		{name: "empty label", in: "a..example"},
		{name: "leading dot", in: ".example"},
		{name: "two trailing dots", in: "example.."},
		{name: "escape", in: `a\.b.example`},
		{name: "space", in: "a b.example"},
		{name: "unicode", in: "bücher.example"},
		{name: "long s folds to s", in: "\u017f.example"},
		{name: "kelvin sign folds to k", in: "\u212a.example"},
		{name: "numeric top-level label", in: "a.123"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := canonicalName(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Errorf("canonicalName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

package resolver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults used by DefaultConfig.
const (
	// DefaultTimeout bounds one Lookup (all servers and attempts together).
	DefaultTimeout = 2 * time.Second
	// DefaultMinTTL is the floor applied to positive answers before caching.
	DefaultMinTTL = 1 * time.Second
	// DefaultMaxTTL is the ceiling applied to positive answers before caching.
	DefaultMaxTTL = 300 * time.Second
	// DefaultNegativeTTL is how long NXDOMAIN/NODATA answers are cached.
	DefaultNegativeTTL = 5 * time.Second
	// DefaultCacheSize is the maximum number of cached names.
	DefaultCacheSize = 10000
	// DefaultCacheBytes bounds the cache's estimated memory.
	DefaultCacheBytes = 8 << 20
	// DefaultMaxAddrs is how many addresses of one name are kept.
	DefaultMaxAddrs = 32
	// DefaultResolvConf is read when Config.Servers is empty.
	DefaultResolvConf = "/etc/resolv.conf"
	// maxAttempts caps resolv.conf's attempts:n.
	maxAttempts = 5
)

// Config holds the resolver's settings. Every field is used literally (a zero
// MinTTL really means "no floor"), so start from DefaultConfig and override.
type Config struct {
	// Servers are upstream DNS servers as "ip:port" ("[::1]:53" for IPv6).
	// When empty, the nameserver lines of ResolvConf are used (port 53).
	Servers []string
	// ResolvConf is the file read when Servers is empty; "" means
	// DefaultResolvConf.
	ResolvConf string
	// Timeout bounds a whole Lookup: both address families, every server
	// and every attempt. Each try gets an equal share of what remains, so a
	// silent first server still leaves time for the next one. Must be > 0.
	Timeout time.Duration
	// Attempts is how many passes are made over Servers within Timeout.
	// 0 means 1, or resolv.conf's "options attempts:n" when the servers
	// came from there.
	Attempts int
	// MinTTL and MaxTTL clamp the TTL of positive answers. With MinTTL 0 an
	// answer whose TTL is 0 is not cached.
	MinTTL, MaxTTL time.Duration
	// NegativeTTL is how long NXDOMAIN and NODATA answers are cached, and the
	// longest a partial answer (one family failed) is cached. 0 disables.
	NegativeTTL time.Duration
	// CacheSize is the maximum number of cached names (least recently used
	// are evicted first). 0 disables the cache.
	CacheSize int
	// CacheBytes bounds the estimated bytes the cached answers hold, names
	// and addresses included; the least recently used go first. Must be
	// positive when the cache is on.
	CacheBytes int
	// MaxAddrs is how many addresses of one name are kept (and validated,
	// cached and dialled); the rest of a larger answer is dropped and
	// counted in Result.Dropped. Each family keeps at least half of the
	// bound when it has that many. Must be at least 1.
	MaxAddrs int
	// Control, when set, is called on every DNS socket before it connects,
	// e.g. to set SO_MARK so the firewall's own queries bypass interception.
	Control func(network, address string, c syscall.RawConn) error
	// Now is the clock used for cache expiry; nil means time.Now. Network
	// timeouts always use the real clock.
	Now func() time.Time
	// Stats, when set, counts the lookups answered from the cache and the
	// others; resolvers that replace one another (on reload) can share it.
	Stats *CacheStats
}

// DefaultConfig returns a Config with every default filled in and no
// servers (so /etc/resolv.conf is used unless Servers is set).
func DefaultConfig() Config {
	return Config{
		Timeout:     DefaultTimeout,
		MinTTL:      DefaultMinTTL,
		MaxTTL:      DefaultMaxTTL,
		NegativeTTL: DefaultNegativeTTL,
		CacheSize:   DefaultCacheSize,
		CacheBytes:  DefaultCacheBytes,
		MaxAddrs:    DefaultMaxAddrs,
	}
}

// validate checks the non-server fields.
func (c *Config) validate() error {
	switch {
	case c.Timeout <= 0:
		return fmt.Errorf("resolver config: timeout must be positive, got %v (start from DefaultConfig)", c.Timeout)
	case c.MinTTL < 0 || c.MaxTTL < 0 || c.NegativeTTL < 0:
		return errors.New("resolver config: TTL bounds must not be negative")
	case c.MinTTL > c.MaxTTL:
		return fmt.Errorf("resolver config: min TTL %v is above max TTL %v", c.MinTTL, c.MaxTTL)
	case c.CacheSize < 0:
		return fmt.Errorf("resolver config: cache size must not be negative, got %d", c.CacheSize)
	case c.CacheSize > 0 && c.CacheBytes <= 0:
		return fmt.Errorf("resolver config: cache bytes must be positive when the cache is on, got %d", c.CacheBytes)
	case c.MaxAddrs < 1:
		return fmt.Errorf("resolver config: max addresses per name must be at least 1, got %d", c.MaxAddrs)
	case c.Attempts < 0:
		return fmt.Errorf("resolver config: attempts must not be negative, got %d", c.Attempts)
	}
	return nil
}

// parseServers checks every "ip:port" entry and returns them canonicalised.
func parseServers(list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for i, s := range list {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("resolver config: server %d %q is not ip:port: %w", i, s, err)
		}
		if ap.Port() == 0 {
			return nil, fmt.Errorf("resolver config: server %d %q has port 0", i, s)
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		out = append(out, ap.String())
	}
	return out, nil
}

// ResolvConf is what egressfw takes from a resolv.conf file. Search domains
// and other options are ignored: names are always fully qualified, and the
// per-try "timeout:" option does not fit Config.Timeout's whole-lookup budget.
type ResolvConf struct {
	// Servers are the nameserver entries as "ip:port", port 53.
	Servers []string
	// Attempts is "options attempts:n" (capped at 5), 0 when absent.
	Attempts int
}

// ReadResolvConf parses the resolv.conf file at path.
func ReadResolvConf(path string) (ResolvConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return ResolvConf{}, fmt.Errorf("read resolv.conf: %w", err)
	}
	defer f.Close()
	rc, err := ParseResolvConf(f)
	if err != nil {
		return ResolvConf{}, fmt.Errorf("%s: %w", path, err)
	}
	return rc, nil
}

// ParseResolvConf parses resolv.conf syntax. An unparseable nameserver
// address is an error naming the line, so a typo is not silently skipped.
func ParseResolvConf(r io.Reader) (ResolvConf, error) {
	var rc ResolvConf
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexAny(text, "#;"); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			addr, err := netip.ParseAddr(fields[1])
			if err != nil {
				return ResolvConf{}, fmt.Errorf("line %d: bad nameserver %q: %w", line, fields[1], err)
			}
			rc.Servers = append(rc.Servers, netip.AddrPortFrom(addr.Unmap(), 53).String())
		case "options":
			for _, opt := range fields[1:] {
				if v, ok := strings.CutPrefix(opt, "attempts:"); ok {
					if n, err := strconv.Atoi(v); err == nil && n > 0 {
						rc.Attempts = min(n, maxAttempts)
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return ResolvConf{}, fmt.Errorf("scan resolv.conf: %w", err)
	}
	return rc, nil
}

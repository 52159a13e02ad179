package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where the packaged service reads its configuration.
const DefaultPath = "/etc/egressfw/egressfw.toml"

// Config is the complete egressfw configuration.
type Config struct {
	Listener Listener `toml:"listener"`
	DNS      DNS      `toml:"dns"`
	Metrics  Metrics  `toml:"metrics"`
	Policy   Policy   `toml:"policy"`
	Firewall Firewall `toml:"firewall"`
	Docker   Docker   `toml:"docker"`
	Limits   Limits   `toml:"limits"`
	Log      Log      `toml:"log"`
	Tenants  []Tenant `toml:"tenant"`
}

// Listener configures the transparent listener and the per-connection data path.
type Listener struct {
	// Port is the first listener port: a tenant's listener is on the
	// port of its slot, Port + slot - 1 (see Slot), on 127.0.0.1 and ::1.
	Port uint16 `toml:"port"`
	// DNSPort is the first DNS listener port: a tenant whose DNS egressfw
	// answers (Tenant.DNS) is served on DNSPort + slot - 1, UDP and TCP.
	DNSPort        uint16   `toml:"dns_port"`
	InterceptPorts []uint16 `toml:"intercept_ports"`
	PeekTimeout    Duration `toml:"peek_timeout"`
	ConnectTimeout Duration `toml:"connect_timeout"`

	// MaxConnectAttempts is how many validated addresses one connection
	// may try upstream (the original destination first).
	MaxConnectAttempts int `toml:"max_connect_attempts"`

	IdleTimeout    Duration `toml:"idle_timeout"`
	ShutdownGrace  Duration `toml:"shutdown_grace"`
	MaxClientHello int      `toml:"max_client_hello"`
	MaxHTTPHeader  int      `toml:"max_http_header"`
	// DenyDetail is what a refused tenant is told: DenyDetailMinimal (one
	// answer for every refusal) or DenyDetailFull (the reason). The log
	// always has the full reason.
	DenyDetail string `toml:"deny_detail"`
}

// Values of listener.deny_detail.
const (
	// DenyDetailMinimal gives every refusal the same 403 page and TLS
	// alert, so a tenant cannot tell an internal name from one that does
	// not resolve or is not allowed: denials do not map the network.
	DenyDetailMinimal = "minimal"
	// DenyDetailFull names the destination and the kind of refusal in the
	// 403 page (never the internal address a name resolved to).
	DenyDetailFull = "full"
)

// DNS configures egressfw's own resolver, the only one the data path uses.
type DNS struct {
	Servers     []string `toml:"servers"` // "ip:port"; empty means /etc/resolv.conf
	Timeout     Duration `toml:"timeout"`
	MinTTL      Duration `toml:"min_ttl"`
	MaxTTL      Duration `toml:"max_ttl"`
	NegativeTTL Duration `toml:"negative_ttl"`
	CacheSize   int      `toml:"cache_size"`
	CacheBytes  int      `toml:"cache_bytes"`   // estimated bytes of cached answers
	MaxAddrs    int      `toml:"max_addresses"` // kept per name; the rest of an answer is dropped
}

// Metrics configures the Prometheus endpoint and the socket egressfw
// status reads.
type Metrics struct {
	Listen string `toml:"listen"` // "" disables
	// StatusSocket is the unix socket `egressfw status` asks (root only;
	// "" disables). The default is in the service's RuntimeDirectory.
	StatusSocket string `toml:"status_socket"`
}

// maxSocketPath is the longest unix socket path (sun_path holds 108 bytes
// with the terminating NUL).
const maxSocketPath = 107

// Policy holds the overrides of the built-in address classification.
type Policy struct {
	InternalCIDRs []netip.Prefix `toml:"internal_cidrs"`
	PublicCIDRs   []netip.Prefix `toml:"public_cidrs"`
	// NAT64Prefixes are the site's own NAT64 /96 prefixes: an address in
	// one is judged by the IPv4 address in its last 32 bits.
	NAT64Prefixes []netip.Prefix `toml:"nat64_prefixes"`
}

// Firewall configures the kernel side: our nftables table, packet and
// conntrack marks, and the policy-routing table and rule priority. The
// defaults avoid the marks and tables of Docker, kube-proxy, Calico, Cilium
// and Tailscale.
type Firewall struct {
	Table           string `toml:"table"`
	MarkMask        uint32 `toml:"mark_mask"`
	InterceptMark   uint32 `toml:"intercept_mark"`
	BypassMark      uint32 `toml:"bypass_mark"`
	CtMarkMask      uint32 `toml:"ctmark_mask"`
	RouteTable      uint32 `toml:"route_table"`
	RulePriority    uint32 `toml:"rule_priority"`
	KeepRulesOnStop bool   `toml:"keep_rules_on_stop"`
	// GuardCgroups are cgroup subtrees that hold tenants only: a socket
	// under one of them that matches no tenant cgroup is denied all new
	// egress, in the kernel. A tenant cgroup re-created while egressfw is
	// down (new id, unknown to the rules) therefore stays blocked.
	GuardCgroups []string `toml:"guard_cgroups"`
	// SubUIDFile lists subordinate uids (shadow-utils' /etc/subuid): a
	// process in a user namespace owns its sockets as one of them. A uid
	// tenant with FollowSubUID also covers the ranges it gives the
	// tenant's uids, followed as the file changes. PasswdFile resolves the
	// user names it uses. Other paths serve tests and hosts that keep the
	// user database elsewhere; both need a restart to change.
	SubUIDFile string `toml:"subuid_file"`
	PasswdFile string `toml:"passwd_file"`
	// ContainerMarkMask carries a labelled container's tenant slot in the
	// packet mark, from the bridge table to the inet table's rules, and
	// ContainerCtMask records it in the conntrack mark of the flows the
	// container opens (docker.go). Used only with docker.socket.
	ContainerMarkMask uint32 `toml:"container_mark_mask"`
	ContainerCtMask   uint32 `toml:"container_ct_mask"`
}

// Limits caps concurrency so one tenant cannot starve the others.
type Limits struct {
	MaxConnections          int `toml:"max_connections"`
	MaxConnectionsPerTenant int `toml:"max_connections_per_tenant"`
	MaxPeeking              int `toml:"max_peeking"`
	MaxPeekingPerTenant     int `toml:"max_peeking_per_tenant"`
	// MaxNewPerSecond paces each tenant's new connections (0: unlimited):
	// beyond it, the tenant's connections wait in the kernel's accept
	// queue, delayed rather than refused. A tenant may set its own.
	MaxNewPerSecond int `toml:"max_new_per_second"`
}

// Log configures the structured log.
type Log struct {
	Level string `toml:"level"` // debug | info | warn | error
	// DenialBurst identical denials per DenialWindow are logged; the rest
	// are counted and reported in a summary line.
	DenialBurst  int      `toml:"denial_burst"`
	DenialWindow Duration `toml:"denial_window"`
}

// Tenant is a set of local processes (by cgroup or uid) and forwarded
// traffic (by ingress interface or source range) whose egress egressfw
// guards, and what they may reach.
type Tenant struct {
	Name    string   `toml:"name"`
	Cgroups []string `toml:"cgroups"`
	UIDs    []uint32 `toml:"uids"`
	// UIDRanges are further owning uids, by range ("100000-165535").
	UIDRanges []UIDRange `toml:"uid_ranges"`
	// FollowSubUID: the tenant also covers the subordinate uids
	// firewall.subuid_file gives its uids (by user name or uid number).
	FollowSubUID bool `toml:"follow_subuid"`
	// Interfaces are ingress interface names of forwarded traffic (Docker,
	// k3s and VM bridges); a trailing "*" matches a prefix ("br-*").
	Interfaces []string `toml:"interfaces"`
	// SourceCIDRs are the source addresses the tenant's forwarded traffic
	// owns. With Interfaces, a packet on them from another source is
	// dropped; without, the ranges alone name the tenant, reverse-path
	// checked.
	SourceCIDRs    []netip.Prefix  `toml:"source_cidrs"`
	Mode           string          `toml:"mode"` // enforce | report
	AllowDomains   []string        `toml:"allow_domains"`
	DenyDomains    []string        `toml:"deny_domains"`
	MaxConnections int             `toml:"max_connections"` // 0: limits.max_connections_per_tenant
	AllowInternal  []AllowInternal `toml:"allow_internal"`
	AllowDirect    []AllowDirect   `toml:"allow_direct"`

	// MaxNewPerSecond paces the tenant's new connections; 0 means
	// limits.max_new_per_second.
	MaxNewPerSecond int `toml:"max_new_per_second"`

	// DockerLabels make the tenant a container tenant: a container whose
	// labels include every one of these (key and value) is the tenant's,
	// wherever it is attached (docker.go).
	DockerLabels map[string]string `toml:"docker_labels"`
	// DNS says who answers the tenant's DNS, every query to port 53 over
	// UDP or TCP whatever address it is sent to: DNSEgressfw (from
	// egressfw's resolver, by the tenant's policy) or DNSDirect (port 53
	// is egress like any other, which allow_direct governs).
	DNS string `toml:"dns"`
	// DNSQueryTypes are the query types egressfw answers for the tenant
	// (upper case, as miekg/dns names them); any other type is REFUSED.
	DNSQueryTypes []string `toml:"dns_query_types"`
	// StripECH removes the ech parameter from HTTPS and SVCB answers, so
	// clients send a cleartext SNI that policy can read.
	StripECH bool `toml:"strip_ech"`
}

// Values of a tenant's dns.
const (
	DNSEgressfw = "egressfw"
	DNSDirect   = "direct"
)

// DefaultDNSQueryTypes are the query types a tenant may ask by default:
// what an HTTP(S) client looks up.
func DefaultDNSQueryTypes() []string { return []string{"A", "AAAA", "CNAME", "HTTPS", "SVCB"} }

// AllowInternal names an internal service a tenant may reach through the
// listener: by host name (which also goes on the allow list) or by CIDR.
type AllowInternal struct {
	Host  string       `toml:"host"`
	CIDR  netip.Prefix `toml:"cidr"`
	Ports []uint16     `toml:"ports"` // empty: every intercept port
}

// AllowDirect is egress that bypasses the listener (e.g. DNS to the resolver).
type AllowDirect struct {
	CIDR     netip.Prefix `toml:"cidr"`
	Ports    []uint16     `toml:"ports"`    // empty: every port
	Protocol string       `toml:"protocol"` // "" (tcp and udp) | tcp | udp
}

// Tenant modes.
const (
	ModeEnforce = "enforce"
	ModeReport  = "report"
)

// Duration is a time.Duration written as a Go duration string ("2s", "5m").
type Duration struct{ time.Duration }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration like \"2s\" or \"500ms\": %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText prints the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// D wraps a time.Duration, for defaults and tests.
func D(v time.Duration) Duration { return Duration{v} }

// Default returns the configuration with every default explicit. Tenants
// have their own defaults, applied by Parse to each [[tenant]] table.
func Default() Config {
	return Config{
		Listener: Listener{
			Port: 15001, DNSPort: 20001, InterceptPorts: []uint16{80, 443},
			PeekTimeout: D(5 * time.Second), ConnectTimeout: D(5 * time.Second), MaxConnectAttempts: 4,
			IdleTimeout: D(5 * time.Minute), ShutdownGrace: D(10 * time.Second),
			MaxClientHello: 16 << 10, MaxHTTPHeader: 16 << 10, DenyDetail: DenyDetailMinimal,
		},
		DNS: DNS{
			Servers: []string{}, Timeout: D(2 * time.Second), MinTTL: D(time.Second), MaxTTL: D(5 * time.Minute),
			NegativeTTL: D(5 * time.Second), CacheSize: 10000,
			CacheBytes: 8 << 20, MaxAddrs: 32,
		},
		Metrics: Metrics{Listen: "127.0.0.1:9464", StatusSocket: "/run/egressfw/status.sock"},
		Policy:  Policy{InternalCIDRs: []netip.Prefix{}, PublicCIDRs: []netip.Prefix{}, NAT64Prefixes: []netip.Prefix{}},
		Firewall: Firewall{
			Table: "egressfw", MarkMask: 0x3000, InterceptMark: 0x2000, BypassMark: 0x1000,
			CtMarkMask: 0x0fff, RouteTable: 1515, RulePriority: 1515, KeepRulesOnStop: true,
			GuardCgroups: []string{"egressfw.slice"},
			SubUIDFile:   "/etc/subuid", PasswdFile: "/etc/passwd",
			ContainerMarkMask: 0xff, ContainerCtMask: 0xff0000,
		},
		Docker: Docker{Reconcile: D(30 * time.Second)},
		Limits: Limits{MaxConnections: 8192, MaxConnectionsPerTenant: 4096, MaxPeeking: 1024, MaxPeekingPerTenant: 512},
		Log:    Log{Level: "info", DenialBurst: 10, DenialWindow: D(10 * time.Second)},
	}
}

// DefaultTenant returns the defaults of a [[tenant]] table.
func DefaultTenant() Tenant {
	return Tenant{Mode: ModeEnforce, AllowDomains: []string{"*"}, FollowSubUID: true,
		DNS: DNSEgressfw, DNSQueryTypes: DefaultDNSQueryTypes(), StripECH: true}
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a config; name labels errors.
func Parse(data []byte, name string) (*Config, error) {
	var raw struct {
		Config
		Tenants []toml.Primitive `toml:"tenant"`
	}
	raw.Config = Default()
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, decodeError(err))
	}
	cfg := raw.Config
	cfg.Tenants = make([]Tenant, len(raw.Tenants))
	for i, p := range raw.Tenants {
		cfg.Tenants[i] = DefaultTenant()
		if err := md.PrimitiveDecode(p, &cfg.Tenants[i]); err != nil {
			return nil, fmt.Errorf("config %s: tenant[%d]: %w", name, i, decodeError(err))
		}
	}
	var errs []error
	if und := md.Undecoded(); len(und) > 0 {
		var tree map[string]any
		_, _ = toml.Decode(string(data), &tree) // already parsed once; cannot fail
		reported := map[string]bool{}
		for _, k := range und {
			if len(k) > 1 && reported[k[:len(k)-1].String()] {
				reported[k.String()] = true // inside an unknown table: said once already
				continue
			}
			reported[k.String()] = true
			errs = append(errs, unknownKey(k, tree))
		}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("config %s:\n%w", name, err)
	}
	return &cfg, nil
}

// decodeError turns toml's errors into one line that names the position.
func decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if pe.LastKey != "" {
			return fmt.Errorf("line %d: key %s: %s", pe.Position.Line, pe.LastKey, pe.Message)
		}
		return fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
	}
	return err
}

// unknownKey describes an undecoded key. Keys inside [[tenant]] tables carry
// no index, so the tenants holding the key are found in the raw tree and named.
func unknownKey(k toml.Key, tree map[string]any) error {
	if len(k) < 2 || k[0] != "tenant" {
		return fmt.Errorf("unknown key %q", k.String())
	}
	tenants, _ := tree["tenant"].([]map[string]any)
	var names []string
	for i, t := range tenants {
		if hasPath(t, k[1:]) {
			names = append(names, tenantLabel(i, t))
		}
	}
	return fmt.Errorf("%s: unknown key %q", strings.Join(names, ", "), strings.Join(k[1:], "."))
}

func tenantLabel(i int, t map[string]any) string {
	if n, ok := t["name"].(string); ok && n != "" {
		return fmt.Sprintf("tenant %q", n)
	}
	return fmt.Sprintf("tenant[%d]", i)
}

// hasPath reports whether the key path exists in a decoded TOML table,
// descending into arrays of tables.
func hasPath(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	switch t := v.(type) {
	case map[string]any:
		next, ok := t[path[0]]
		return ok && hasPath(next, path[1:])
	case []map[string]any:
		for _, e := range t {
			if hasPath(e, path) {
				return true
			}
		}
	}
	return false
}

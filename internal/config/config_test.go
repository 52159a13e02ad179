package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const base = `
[[tenant]]
name = "web"
cgroups = ["egressfw.slice/egressfw-web.slice"]
`

func TestShippedExampleIsValidAndMatchesDefaults(t *testing.T) {
	cfg, err := Load("../../configs/egressfw.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The example documents every default: apart from its tenant, it must
	// decode to exactly Default(), or the comments lie.
	got := *cfg
	got.Tenants = nil
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("shipped example differs from Default():\n got %+v\nwant %+v", got, want)
	}
	if len(cfg.Tenants) != 1 || cfg.Tenants[0].Name != "webhooks" || cfg.Tenants[0].Mode != ModeEnforce {
		t.Fatalf("example tenant = %+v", cfg.Tenants)
	}
	// Its DNS is egressfw's, with the tenant defaults written out: it needs
	// no allow_direct hole to a resolver.
	want := DefaultTenant()
	if tn := cfg.Tenants[0]; len(tn.AllowDirect) != 0 || tn.DNS != want.DNS || tn.StripECH != want.StripECH ||
		!reflect.DeepEqual(tn.DNSQueryTypes, want.DNSQueryTypes) {
		t.Fatalf("example tenant = %+v", tn)
	}
}

func TestTenantDefaultsAndNormalisation(t *testing.T) {
	cfg, err := Parse([]byte(base+`
deny_domains = ["Evil.Example.", "*.BÜCHER.example"]
  [[tenant.allow_internal]]
  host = "BI-Tool.Example.COM."
  ports = [80]
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	tn := cfg.Tenants[0]
	if tn.Mode != ModeEnforce || !reflect.DeepEqual(tn.AllowDomains, []string{"*"}) {
		t.Fatalf("tenant defaults not applied: %+v", tn)
	}
	if want := []string{"evil.example", "*.xn--bcher-kva.example"}; !reflect.DeepEqual(tn.DenyDomains, want) {
		t.Fatalf("deny_domains = %q, want %q", tn.DenyDomains, want)
	}
	if tn.AllowInternal[0].Host != "bi-tool.example.com" {
		t.Fatalf("allow_internal host = %q", tn.AllowInternal[0].Host)
	}
	if cfg.DNS.Timeout.Duration != 2*time.Second || cfg.Listener.Port != 15001 || cfg.Listener.DNSPort != 20001 {
		t.Fatalf("global defaults lost: %+v", cfg)
	}
	if tn.DNS != DNSEgressfw || !tn.StripECH || !reflect.DeepEqual(tn.DNSQueryTypes, []string{"A", "AAAA", "CNAME", "HTTPS", "SVCB"}) {
		t.Fatalf("tenant DNS defaults not applied: %+v", tn)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // every substring must appear in the error
	}{
		{"unknown top key", "bogus = 1\n" + base, []string{`unknown key "bogus"`}},
		{"unknown section key", "[listener]\nprot = 1\n" + base, []string{`unknown key "listener.prot"`}},
		{"unknown tenant key names tenant", base + "colour = 1\n", []string{`tenant "web": unknown key "colour"`}},
		{"unknown nested tenant key", base + "[[tenant.allow_direct]]\ncidr = \"10.0.0.0/8\"\nport = 53\n", []string{`tenant "web": unknown key "allow_direct.port"`}},
		{"wrong type", "[listener]\nport = \"x\"\n" + base, []string{"listener.port", "incompatible types"}},
		{"port overflow", "[listener]\nport = 70000\n" + base, []string{"listener.port", "out of range"}},
		{"client hello over 16 KiB", "[listener]\nmax_client_hello = 16385\n" + base, []string{"listener.max_client_hello: 16385 is out of range [512, 16384]"}},
		{"http header over 64 KiB", "[listener]\nmax_http_header = 65537\n" + base, []string{"listener.max_http_header: 65537 is out of range [512, 65536]"}},
		{"bad duration", "[dns]\ntimeout = \"2x\"\n" + base, []string{"dns.timeout", "not a duration"}},
		{"zero timeout", "[dns]\ntimeout = \"0s\"\n" + base, []string{"dns.timeout: 0s is out of range"}},
		{"bad server", "[dns]\nservers = [\"10.0.0.1\"]\n" + base, []string{`dns.servers[0]: "10.0.0.1" is not "ip:port"`}},
		{"bad cidr", "[policy]\ninternal_cidrs = [\"10.0.0.0/33\"]\n" + base, []string{"policy.internal_cidrs", "10.0.0.0/33"}},
		{"host bits", "[policy]\npublic_cidrs = [\"192.0.2.1/24\"]\n" + base, []string{"policy.public_cidrs[0]", "did you mean 192.0.2.0/24"}},
		{"connect attempts above the dialer's ceiling", "[listener]\nmax_connect_attempts = 17\n" + base, []string{"listener.max_connect_attempts: 17 is out of range [1, 16]"}},
		{"dns cache bytes too small", "[dns]\ncache_bytes = 1024\n" + base, []string{"dns.cache_bytes: 1024 is out of range"}},
		{"dns max addresses zero", "[dns]\nmax_addresses = 0\n" + base, []string{"dns.max_addresses: 0 is out of range [1, 256]"}},
		{"nat64 not a /96", "[policy]\nnat64_prefixes = [\"2001:db8:64::/64\"]\n" + base, []string{"policy.nat64_prefixes[0]", "is a /64", "a /96"}},
		{"nat64 IPv4", "[policy]\nnat64_prefixes = [\"2001:db8:64::/96\", \"10.0.0.0/8\"]\n" + base, []string{"policy.nat64_prefixes[1]", "not an IPv6 prefix"}},
		{"nat64 host bits", "[policy]\nnat64_prefixes = [\"2001:db8:64::1/96\"]\n" + base, []string{"policy.nat64_prefixes[0]", "did you mean 2001:db8:64::/96"}},
		{"nat64 well-known", "[policy]\nnat64_prefixes = [\"64:ff9b::/96\"]\n" + base, []string{"policy.nat64_prefixes[0]", "decoded already (inside 64:ff9b::/96)"}},
		{"nat64 6to4", "[policy]\nnat64_prefixes = [\"2002:a00:1::/96\"]\n" + base, []string{"policy.nat64_prefixes[0]", "inside 2002::/16"}},
		{"cidr both lists", "[policy]\npublic_cidrs = [\"192.0.2.0/24\"]\ninternal_cidrs = [\"192.0.2.0/24\"]\n" + base, []string{"also in policy.internal_cidrs"}},
		{"metrics", "[metrics]\nlisten = \"localhost\"\n" + base, []string{"metrics.listen"}},
		{"status socket relative", "[metrics]\nstatus_socket = \"run/status.sock\"\n" + base, []string{`metrics.status_socket: "run/status.sock" must be a clean absolute path`}},
		{"status socket too long", "[metrics]\nstatus_socket = \"/" + strings.Repeat("d", 107) + "\"\n" + base, []string{"metrics.status_socket: 108 bytes long; a unix socket path has at most 107"}},
		{"no intercept ports", "[listener]\nintercept_ports = []\n" + base, []string{"at least one port"}},
		{"intercept dup", "[listener]\nintercept_ports = [80, 80]\n" + base, []string{"port 80 is listed twice"}},
		{"intercept is listener", "[listener]\nintercept_ports = [15001]\n" + base, []string{"listener's own ports"}},
		{"intercept is a DNS port", "[listener]\nintercept_ports = [80, 20001]\n" + base, []string{"port 20001 is one of the listener's own DNS ports"}},
		{"intercept 53", "[listener]\nintercept_ports = [53, 80]\n" + base, []string{"listener.intercept_ports: port 53 is DNS"}},
		{"dns port 0", "[listener]\ndns_port = 0\n" + base, []string{"listener.dns_port: must be 1-65535"}},
		{"dns ports past 65535", "[listener]\ndns_port = 65535\n" + base + "[[tenant]]\nname = \"b\"\nuids = [7]\n",
			[]string{"listener.dns_port: 2 tenants need DNS ports 65535-65536, past 65535"}},
		{"dns ports include 53", "[listener]\ndns_port = 52\n" + base + "[[tenant]]\nname = \"b\"\nuids = [7]\n",
			[]string{"listener.dns_port: the DNS ports of 2 tenants, 52-53, include 53"}},
		{"dns ports overlap the listener's", "[listener]\nport = 20000\ndns_port = 19999\n" + base + "[[tenant]]\nname = \"b\"\nuids = [7]\n",
			[]string{"listener.dns_port: the DNS ports of 2 tenants, 19999-20000, overlap the listener ports 20000-20001"}},
		{"tenant dns", base + "dns = \"resolved\"\n", []string{`tenant "web".dns: "resolved" must be "egressfw"`}},
		{"query type unknown", base + "dns_query_types = [\"A\", \"AAAAA\"]\n", []string{`tenant "web".dns_query_types[1]: "AAAAA" is not a DNS record type`}},
		{"query type meta", base + "dns_query_types = [\"ANY\"]\n", []string{`tenant "web".dns_query_types[0]: "ANY" is not a data type`}},
		{"query type OPT", base + "dns_query_types = [\"opt\"]\n", []string{`tenant "web".dns_query_types[0]: "opt" is not a data type`}},
		{"query type twice", base + "dns_query_types = [\"TXT\", \"txt\"]\n", []string{`tenant "web".dns_query_types[1]: "txt" is listed twice`}},
		{"marks outside mask", "[firewall]\nintercept_mark = 0x4000\n" + base, []string{"firewall.intercept_mark", "inside mark_mask"}},
		{"marks equal", "[firewall]\nbypass_mark = 0x2000\n" + base, []string{"must differ"}},
		{"ctmark mask not low bits", "[firewall]\nctmark_mask = 0xff00\n" + base, []string{"firewall.ctmark_mask", "contiguous low bits"}},
		{"bad guard cgroup", "[firewall]\nguard_cgroups = [\"/egressfw.slice\"]\n" + base, []string{"firewall.guard_cgroups[0]"}},
		{"tenant is a guard", "[firewall]\nguard_cgroups = [\"egressfw.slice/egressfw-web.slice\"]\n" + base, []string{"is a guard cgroup"}},
		{"route table reserved", "[firewall]\nroute_table = 254\n" + base, []string{"firewall.route_table: 254 is reserved"}},
		{"bad table name", "[firewall]\ntable = \"Egress FW\"\n" + base, []string{"firewall.table"}},
		{"deny detail", "[listener]\ndeny_detail = \"verbose\"\n" + base, []string{`listener.deny_detail: "verbose" must be "minimal" or "full"`}},
		{"limits", "[limits]\nmax_connections_per_tenant = 99999\n" + base, []string{"limits.max_connections_per_tenant"}},
		{"negative rate", "[limits]\nmax_new_per_second = -1\n" + base, []string{"limits.max_new_per_second: -1 is out of range"}},
		{"tenant rate", base + "max_new_per_second = 2000000\n", []string{`tenant "web".max_new_per_second: 2000000 is out of range`}},
		{"log level", "[log]\nlevel = \"loud\"\n" + base, []string{"log.level"}},
		{"tenant name", "[[tenant]]\nname = \"Web Hooks\"\nuids = [1]\n", []string{`tenant[0].name: "Web Hooks"`}},
		{"duplicate tenant", base + base, []string{`tenant "web": name is also used by tenant[0]`}},
		{"matches nothing", "[[tenant]]\nname = \"a\"\n", []string{`tenant "a": matches nothing`}},
		{"absolute cgroup", "[[tenant]]\nname = \"a\"\ncgroups = [\"/sys/fs/cgroup/x\"]\n", []string{`tenant "a".cgroups`, "relative to the cgroup2 root"}},
		{"dotdot cgroup", "[[tenant]]\nname = \"a\"\ncgroups = [\"a/../b\"]\n", []string{`tenant "a".cgroups`}},
		{"overlapping cgroups", base + "[[tenant]]\nname = \"b\"\ncgroups = [\"egressfw.slice\"]\n", []string{`tenant "b".cgroups: "egressfw.slice" overlaps "egressfw.slice/egressfw-web.slice" of tenant "web"`}},
		{"shared uid", "[[tenant]]\nname = \"a\"\nuids = [5]\n[[tenant]]\nname = \"b\"\nuids = [5]\n", []string{`tenant "b".uids: uid 5 is also claimed by tenant "a"`}},
		{"mode", base + "mode = \"audit\"\n", []string{`tenant "web".mode: "audit"`}},
		{"bad pattern", base + "allow_domains = [\"a.*.example\"]\n", []string{`tenant "web".allow_domains[0]`}},
		{"ip pattern", base + "deny_domains = [\"10.0.0.1\"]\n", []string{`tenant "web".deny_domains[0]`, "is an IP address"}},
		{"invalid name pattern", base + "allow_domains = [\"a..b\"]\n", []string{`tenant "web".allow_domains[0]`, "empty label"}},
		{"internal both", base + "[[tenant.allow_internal]]\nhost = \"a.example\"\ncidr = \"10.0.0.0/8\"\n", []string{"allow_internal[0]: set host or cidr, not both"}},
		{"internal none", base + "[[tenant.allow_internal]]\nports = [80]\n", []string{"allow_internal[0]: set host or cidr"}},
		{"internal ip host", base + "[[tenant.allow_internal]]\nhost = \"10.0.0.5\"\n", []string{`use cidr = "10.0.0.5/32"`}},
		{"internal port not intercepted", base + "[[tenant.allow_internal]]\nhost = \"a.example\"\nports = [8080]\n", []string{"port 8080 is not in listener.intercept_ports"}},
		{"direct no cidr", base + "[[tenant.allow_direct]]\nports = [53]\n", []string{"allow_direct[0].cidr: required"}},
		{"direct protocol", base + "[[tenant.allow_direct]]\ncidr = \"10.0.0.0/8\"\nprotocol = \"icmp\"\n", []string{`allow_direct[0].protocol: "icmp"`}},
		{"direct intercepted port", base + "[[tenant.allow_direct]]\ncidr = \"10.0.0.0/8\"\nports = [443]\n", []string{"TCP port 443 is intercepted"}},
		{"uid 0", uidTOML("a", "uids = [1000, 0]"), []string{`tenant "a".uids: uid 0 is root`}},
		{"uid (uid_t)-1", uidTOML("a", "uids = [4294967295]"), []string{`tenant "a".uids: uid 4294967295 is (uid_t)-1`}},
		{"range with 0", uidTOML("a", `uid_ranges = ["0-65535"]`), []string{`tenant "a".uid_ranges: 0-65535 contains uid 0 (root)`}},
		{"range to (uid_t)-1", uidTOML("a", `uid_ranges = ["4294900000-4294967295"]`), []string{`tenant "a".uid_ranges: 4294900000-4294967295 contains uid 4294967295`}},
		{"range reversed", uidTOML("a", `uid_ranges = ["2000-1000"]`), []string{`tenant[0]`, `not a uid range like "100000-165535"`, `"2000-1000"`}},
		{"range not a number", uidTOML("a", `uid_ranges = ["alice"]`), []string{`not a uid range`}},
		{"range overlaps another tenant's range", uidTOML("a", `uid_ranges = ["100000-165535"]`) + uidTOML("b", `uid_ranges = ["165535-231071"]`),
			[]string{`tenant "b".uid_ranges: uid range 165535-231071 is also claimed by tenant "a" (its uid range 100000-165535)`}},
		{"uid inside another tenant's range", uidTOML("a", `uid_ranges = ["100000-165535"]`) + uidTOML("b", "uids = [100999]"),
			[]string{`tenant "b".uids: uid 100999 is also claimed by tenant "a" (its uid range 100000-165535)`}},
		{"range over another tenant's uid", uidTOML("a", "uids = [1000]") + uidTOML("b", `uid_ranges = ["1-65535"]`),
			[]string{`tenant "b".uid_ranges: uid range 1-65535 is also claimed by tenant "a" (its uid 1000)`}},
		{"bad subuid file", "[firewall]\nsubuid_file = \"etc/subuid\"\n", []string{`firewall.subuid_file: "etc/subuid" must be a clean absolute path`}},
		{"bad passwd file", "[firewall]\npasswd_file = \"/etc/../passwd\"\n", []string{`firewall.passwd_file`}},
		{"several errors at once", "[listener]\npeek_timeout = \"0s\"\n[log]\nlevel = \"x\"\n" + base, []string{"listener.peek_timeout", "log.level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.toml), "test.toml")
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.toml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct{ name, toml string }{
		{"no tenants", ""},
		{"full deny detail", "[listener]\ndeny_detail = \"full\"\n" + base},
		{"paced tenant", "[limits]\nmax_new_per_second = 100\n" + base + "max_new_per_second = 5\n"},
		{"uid tenant report mode", "[[tenant]]\nname = \"a\"\nuids = [1000]\nmode = \"report\"\n"},
		{"udp on intercept port", base + "[[tenant.allow_direct]]\ncidr = \"2001:db8::/32\"\nports = [443]\nprotocol = \"udp\"\n"},
		{"internal cidr any port", base + "[[tenant.allow_internal]]\ncidr = \"10.0.5.0/24\"\n"},
		{"sibling cgroups", base + "[[tenant]]\nname = \"b\"\ncgroups = [\"egressfw.slice/egressfw-web2.slice\"]\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.toml), "test.toml"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/nope.toml")
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestForwardedTenants(t *testing.T) {
	fwd := func(name, extra string) string { return "[[tenant]]\nname = \"" + name + "\"\n" + extra }
	bad := []struct {
		name, toml string
		want       []string
	}{
		{"shared interface", fwd("a", `interfaces = ["docker0"]`+"\n") + fwd("b", `interfaces = ["docker0"]`+"\n"),
			[]string{`tenant "b".interfaces[0]: "docker0" overlaps "docker0" of tenant "a"`}},
		{"prefix covers name", fwd("a", `interfaces = ["br-1234"]`+"\n") + fwd("b", `interfaces = ["br-*"]`+"\n"),
			[]string{`tenant "b".interfaces[0]: "br-*" overlaps "br-1234" of tenant "a"`}},
		{"prefixes nest", fwd("a", `interfaces = ["br-*"]`+"\n") + fwd("b", `interfaces = ["b*"]`+"\n"),
			[]string{`"b*" overlaps "br-*" of tenant "a"`}},
		{"shared source", fwd("a", `source_cidrs = ["172.17.0.0/16"]`+"\n") + fwd("b", `source_cidrs = ["172.17.3.0/24"]`+"\n"),
			[]string{`tenant "b".source_cidrs[0]: 172.17.3.0/24 overlaps 172.17.0.0/16 of tenant "a"`}},
		{"shared v6 source", fwd("a", `source_cidrs = ["fd00:17::/64"]`+"\n") + fwd("b", `source_cidrs = ["fd00::/8"]`+"\n"),
			[]string{`fd00::/8 overlaps fd00:17::/64 of tenant "a"`}},
		{"star alone", fwd("a", `interfaces = ["*"]`+"\n"), []string{`tenant "a".interfaces[0]`, "every interface"}},
		{"lo", fwd("a", `interfaces = ["lo"]`+"\n"), []string{`tenant "a".interfaces[0]`, "lo"}},
		{"too long", fwd("a", `interfaces = ["abcdefghijklmnop"]`+"\n"), []string{"1-15 bytes"}},
		{"inner star", fwd("a", `interfaces = ["br*x"]`+"\n"), []string{"no '/', ':', '*'"}},
		{"slash", fwd("a", `interfaces = ["a/b"]`+"\n"), []string{`tenant "a".interfaces[0]`}},
		{"source host bits", fwd("a", `source_cidrs = ["172.17.0.1/16"]`+"\n"), []string{"did you mean 172.17.0.0/16"}},
		{"source mapped", fwd("a", `source_cidrs = ["::ffff:10.0.0.0/104"]`+"\n"), []string{"IPv4-mapped"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.toml), "test.toml")
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.toml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
	good := []struct{ name, toml string }{
		{"containers", fwd("containers", `interfaces = ["docker0", "br-*"]`+"\n"+`source_cidrs = ["172.17.0.0/16", "fd00:17::/64"]`+"\n")},
		{"source only", fwd("vms", `source_cidrs = ["192.168.122.0/24"]`+"\n")},
		{"every kind", base + `uids = [1000]` + "\n" + `interfaces = ["cni0"]` + "\n" + `source_cidrs = ["10.42.0.0/16"]` + "\n"},
		{"sibling prefixes", fwd("a", `interfaces = ["br-a*"]`+"\n") + fwd("b", `interfaces = ["br-b*", "virbr0"]`+"\n")},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.toml), "test.toml"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// uidTOML is a [[tenant]] table named name with extra lines.
func uidTOML(name, extra string) string {
	return "[[tenant]]\nname = \"" + name + "\"\n" + extra + "\n"
}

// TestTenantDNSKeys: dns_query_types are written in upper case and
// replace the defaults of that tenant only.
func TestTenantDNSKeys(t *testing.T) {
	cfg, err := Parse([]byte(base+`dns = "direct"
strip_ech = false
dns_query_types = ["txt"]
[[tenant]]
name = "b"
uids = [7]
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Tenants[0], cfg.Tenants[1]
	if a.DNS != DNSDirect || a.StripECH || !reflect.DeepEqual(a.DNSQueryTypes, []string{"TXT"}) {
		t.Errorf("tenant web: %+v", a)
	}
	if b.DNS != DNSEgressfw || !b.StripECH || !reflect.DeepEqual(b.DNSQueryTypes, DefaultDNSQueryTypes()) {
		t.Errorf("tenant b lost its defaults: %+v", b)
	}
}

package policy

import "net/netip"

// Entry is one row of the special-purpose address table: a block, what it is
// for, the RFC that defines it and whether the IANA registry marks it
// globally reachable.
type Entry struct {
	Prefix netip.Prefix
	Name   string // short, lower case where the registry name allows, e.g. "private-use"
	RFC    string // e.g. "RFC 1918"
	Global bool   // the registry's "Globally Reachable" column; false when False or N/A
	IANA   bool   // true for rows of the IANA special-purpose registries, false for the extra blocks added here
}

// registry is the IANA IPv4 and IPv6 Special-Purpose Address Registries as
// updated 2025-04 (IPv6: 100:0:0:1::/64, RFC 9780), every row, followed by the
// blocks outside those registries that egressfw also treats as internal
// (multicast, class E as a whole, everything outside 2000::/3).
//
// Rows whose Globally Reachable value is N/A or empty (Teredo, 6to4, the
// terminated 6to4 relay anycast and ORCHID blocks) are internal here; 6to4 and
// the NAT64 well-known prefix are judged by the IPv4 address they embed
// before this table is consulted (see Classifier.Classify).
var registry = []Entry{
	// IANA IPv4 Special-Purpose Address Registry.
	{pfx("0.0.0.0/8"), `"this network"`, "RFC 791", false, true},
	{pfx("0.0.0.0/32"), `"this host on this network"`, "RFC 1122", false, true},
	{pfx("10.0.0.0/8"), "private-use", "RFC 1918", false, true},
	{pfx("100.64.0.0/10"), "shared address space", "RFC 6598", false, true},
	{pfx("127.0.0.0/8"), "loopback", "RFC 1122", false, true},
	{pfx("169.254.0.0/16"), "link-local", "RFC 3927", false, true},
	{pfx("172.16.0.0/12"), "private-use", "RFC 1918", false, true},
	{pfx("192.0.0.0/24"), "IETF protocol assignments", "RFC 6890", false, true},
	{pfx("192.0.0.0/29"), "IPv4 service continuity prefix", "RFC 7335", false, true},
	{pfx("192.0.0.8/32"), "IPv4 dummy address", "RFC 7600", false, true},
	{pfx("192.0.0.9/32"), "Port Control Protocol anycast", "RFC 7723", true, true},
	{pfx("192.0.0.10/32"), "Traversal Using Relays around NAT anycast", "RFC 8155", true, true},
	{pfx("192.0.0.170/32"), "NAT64/DNS64 discovery", "RFC 8880", false, true},
	{pfx("192.0.0.171/32"), "NAT64/DNS64 discovery", "RFC 8880", false, true},
	{pfx("192.0.2.0/24"), "documentation (TEST-NET-1)", "RFC 5737", false, true},
	{pfx("192.31.196.0/24"), "AS112-v4", "RFC 7535", true, true},
	{pfx("192.52.193.0/24"), "AMT", "RFC 7450", true, true},
	{pfx("192.88.99.0/24"), "deprecated 6to4 relay anycast", "RFC 7526", false, true},
	{pfx("192.88.99.2/32"), "6a44-relay anycast", "RFC 6751", false, true},
	{pfx("192.168.0.0/16"), "private-use", "RFC 1918", false, true},
	{pfx("192.175.48.0/24"), "direct delegation AS112 service", "RFC 7534", true, true},
	{pfx("198.18.0.0/15"), "benchmarking", "RFC 2544", false, true},
	{pfx("198.51.100.0/24"), "documentation (TEST-NET-2)", "RFC 5737", false, true},
	{pfx("203.0.113.0/24"), "documentation (TEST-NET-3)", "RFC 5737", false, true},
	{pfx("240.0.0.0/4"), "reserved", "RFC 1112", false, true},
	{pfx("255.255.255.255/32"), "limited broadcast", "RFC 919", false, true},

	// IANA IPv6 Special-Purpose Address Registry.
	{pfx("::1/128"), "loopback", "RFC 4291", false, true},
	{pfx("::/128"), "unspecified", "RFC 4291", false, true},
	{pfx("::ffff:0:0/96"), "IPv4-mapped", "RFC 4291", false, true},
	{pfx("64:ff9b::/96"), "IPv4/IPv6 translation, well-known prefix", "RFC 6052", true, true},
	{pfx("64:ff9b:1::/48"), "IPv4/IPv6 translation, local-use prefix", "RFC 8215", false, true},
	{pfx("100::/64"), "discard-only", "RFC 6666", false, true},
	{pfx("100:0:0:1::/64"), "dummy IPv6 prefix", "RFC 9780", false, true},
	{pfx("2001::/23"), "IETF protocol assignments", "RFC 2928", false, true},
	{pfx("2001::/32"), "Teredo", "RFC 4380", false, true},
	{pfx("2001:1::1/128"), "Port Control Protocol anycast", "RFC 7723", true, true},
	{pfx("2001:1::2/128"), "Traversal Using Relays around NAT anycast", "RFC 8155", true, true},
	{pfx("2001:1::3/128"), "DNS-SD Service Registration Protocol anycast", "RFC 9665", true, true},
	{pfx("2001:2::/48"), "benchmarking", "RFC 5180", false, true},
	{pfx("2001:3::/32"), "AMT", "RFC 7450", true, true},
	{pfx("2001:4:112::/48"), "AS112-v6", "RFC 7535", true, true},
	{pfx("2001:10::/28"), "deprecated ORCHID", "RFC 4843", false, true},
	{pfx("2001:20::/28"), "ORCHIDv2", "RFC 7343", true, true},
	{pfx("2001:30::/28"), "drone remote ID entity tags", "RFC 9374", true, true},
	{pfx("2001:db8::/32"), "documentation", "RFC 3849", false, true},
	{pfx("2002::/16"), "6to4", "RFC 3056", false, true},
	{pfx("2620:4f:8000::/48"), "direct delegation AS112 service", "RFC 7534", true, true},
	{pfx("3fff::/20"), "documentation", "RFC 9637", false, true},
	{pfx("5f00::/16"), "SRv6 SIDs", "RFC 9602", false, true},
	{pfx("fc00::/7"), "unique-local", "RFC 4193", false, true},
	{pfx("fe80::/10"), "link-local", "RFC 4291", false, true},

	// Not special-purpose rows, but never public destinations.
	{pfx("224.0.0.0/4"), "multicast", "RFC 5771", false, false},
	{pfx("::/96"), "IPv4-compatible (deprecated)", "RFC 4291", false, false},
	{pfx("fec0::/10"), "site-local (deprecated)", "RFC 3879", false, false},
	{pfx("ff00::/8"), "multicast", "RFC 4291", false, false},
	// The complement of 2000::/3: only global unicast space can be public.
	{pfx("::/3"), "outside global unicast 2000::/3", "RFC 4291", false, false},
	{pfx("4000::/2"), "outside global unicast 2000::/3", "RFC 4291", false, false},
	{pfx("8000::/1"), "outside global unicast 2000::/3", "RFC 4291", false, false},

	// Cloud platform endpoints in public address space: a VM reaches them
	// without a credential, so to a tenant they are as internal as the
	// metadata address. The RFC column names the vendor instead.
	//
	// Azure WireServer (VM agent goal state and certificates, the platform
	// DNS, DHCP and load-balancer probes): "a virtual public IP address",
	// the same in all regions and national clouds.
	// https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
	{pfx("168.63.129.16/32"), "Azure WireServer, a cloud platform endpoint", "Microsoft Azure", false, false},
	//
	// Every other platform endpoint found lives in a block above already:
	//   link-local 169.254.0.0/16: the instance metadata service of AWS,
	//     GCP (metadata.google.internal), Azure (IMDS), Oracle OCI,
	//     DigitalOcean, Hetzner, OpenStack, Akamai/Linode at 169.254.169.254
	//     (docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html,
	//     cloud.google.com/compute/docs/metadata/querying-metadata,
	//     docs.oracle.com/iaas/Content/Compute/Tasks/gettingmetadata.htm,
	//     docs.digitalocean.com/products/droplets/how-to/access-metadata/,
	//     docs.hetzner.cloud/#server-metadata,
	//     docs.openstack.org/nova/latest/admin/metadata-service.html);
	//     AWS ECS task metadata 169.254.170.2, AWS DNS 169.254.169.253 and
	//     time 169.254.169.123; Scaleway 169.254.42.42; Tencent Cloud
	//     metadata.tencentyun.com at 169.254.0.23
	//     (intl.cloud.tencent.com/document/product/213/4934);
	//   link-local fe80::/10: OpenStack over IPv6, fe80::a9fe:a9fe (nova
	//     metadata-service, above);
	//   unique-local fc00::/7: AWS IMDS over IPv6 fd00:ec2::254 (and its
	//     DNS fd00:ec2::253, time fd00:ec2::123, EKS pod identity
	//     fd00:ec2::23), Akamai/Linode fd00:a9fe:a9fe::1
	//     (cloud-init doc/rtd/reference/datasources/akamai.rst), Scaleway
	//     fd00:42::42 (cloud-init .../datasources/scaleway.rst), GCP's IPv6
	//     metadata fd20:ce::254;
	//   shared address space 100.64.0.0/10: Alibaba Cloud ECS metadata
	//     100.100.100.200 and its DNS 100.100.2.136/138
	//     (alibabacloud.com/help/ecs/user-guide/overview-of-ecs-instance-metadata);
	//   IETF protocol assignments 192.0.0.0/24: Oracle Cloud@Customer and
	//     Cloud Classic metadata 192.0.0.192
	//     (docs.oracle.com/en/cloud/cloud-at-customer/occ-get-started/retrieve-predefined-instance-metadata.html).
	// Not an address at all: Equinix Metal serves metadata from the public
	// name metadata.platformequinix.com and tells instances apart by their
	// source address; deny that name (deny_domains) where it matters.
}

// registryTable indexes registry for longest-prefix lookups.
var registryTable = func() *prefixTable {
	t := &prefixTable{}
	for i, e := range registry {
		t.add(e.Prefix, i)
	}
	t.sort()
	return t
}()

// Registry returns a copy of the special-purpose address table the
// classifier uses, for documentation and diagnostics.
func Registry() []Entry {
	out := make([]Entry, len(registry))
	copy(out, registry)
	return out
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

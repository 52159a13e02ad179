package config

import (
	"fmt"
	"github.com/egressfw/egressfw/internal/dnsname"
	"strings"

	"github.com/miekg/dns"
)

// checkTenantDNS validates a tenant's dns and dns_query_types, and writes
// the query types in upper case.
func checkTenantDNS(v *validator, key string, t *Tenant) {
	if t.DNS != DNSEgressfw && t.DNS != DNSDirect {
		v.add(key+".dns", "%q must be %q (egressfw answers the tenant's DNS) or %q (port 53 is allow_direct's)", t.DNS, DNSEgressfw, DNSDirect)
	}
	seen := map[uint16]bool{}
	for i, name := range t.DNSQueryTypes {
		k := fmt.Sprintf("%s.dns_query_types[%d]", key, i)
		up := strings.ToUpper(name)
		qtype, ok := dns.StringToType[up]
		switch {
		case !ok:
			v.add(k, "%q is not a DNS record type (like \"A\", \"TXT\", \"MX\")", name)
		case !dnsname.DataType(qtype):
			v.add(k, "%q is not a data type: OPT and the meta and question-only types (ANY, AXFR, IXFR, TSIG, ...) are never answered", name)
		case seen[qtype]:
			v.add(k, "%q is listed twice", name)
		}
		seen[qtype] = true
		t.DNSQueryTypes[i] = up
	}
}

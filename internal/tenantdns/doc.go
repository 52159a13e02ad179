// Package tenantdns decides egressfw's answer to a tenant's DNS question.
// A tenant whose DNS egressfw answers (dns = "egressfw") has its queries
// to port 53 redirected to a DNS listener (internal/dnsfront, which reads
// them and writes the replies); internal/proxy finds the tenant by the
// listener's slot and asks Tenant.Answer, as `egressfw explain --dns`
// does: the tenant's query types, then the name as a connection to it
// would be judged (policy.DecideLookup: the name rules, one lookup, every
// alias and address), and the answer built from the very lookup that was
// judged, so the address a tenant connects to is one egressfw validated.
// Every refusal of a name is NXDOMAIN, the answer of a name that does not
// exist (see dnsfront); a type the tenant may not ask is REFUSED.
//
// Layout: answer.go the Tenant's settings and its answers; lookup.go the
// resolver as the policy's Lookup, shared with the connections' verdict.
package tenantdns

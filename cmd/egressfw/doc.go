// Command egressfw is a transparent egress firewall: it hands the outbound
// HTTP(S) of tenant processes to a listener that resolves and validates the
// destination itself, so tenants cannot reach internal services (SSRF).
package main

// Package dnsname is the one place where egressfw turns a host string taken
// from untrusted input (a TLS SNI, an HTTP Host header, a URL, a config
// pattern) into either a normalised DNS name or an IP address.
//
// Every path that reads a host goes through Host, so a name the policy
// checks is exactly the name the resolver asks for, and an IP literal in any
// spelling that inet_aton(3) accepts is recognised as an address and never
// sent to DNS as a name.
package dnsname

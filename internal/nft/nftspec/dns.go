package nftspec

import (
	"fmt"
	"slices"
)

// StandardDNSPort is the port DNSIntercept takes from the tenant, UDP and
// TCP, whatever address a packet was sent to.
const StandardDNSPort = 53

// DNSMode says where a tenant's DNS goes.
type DNSMode uint8

// DNS modes. The zero value keeps port 53 ordinary egress, so a Spec that
// says nothing about DNS installs the rules it always did; the daemon
// sets DNSIntercept for `dns = "egressfw"`, the config's default.
const (
	// DNSDirect: port 53 is egress like any other, allowed by AllowDirect.
	DNSDirect DNSMode = iota
	// DNSIntercept: every packet to port 53 goes to the DNS listener.
	DNSIntercept
)

// validateDNS checks the DNS ports: each intercepting tenant has one, not
// 53, not an intercept port, and no port is another tenant's listener or
// DNS port; and no TCP intercept port is 53.
func (s *Spec) validateDNS() error {
	ports := map[uint16]string{}
	for _, t := range s.Tenants {
		ports[t.ListenerPort] = t.Name
	}
	for _, t := range s.Tenants {
		if t.DNS == DNSDirect {
			continue
		}
		switch {
		case t.DNSPort == 0 || t.DNSPort == StandardDNSPort || slices.Contains(s.InterceptPorts, t.DNSPort):
			return fmt.Errorf("tenant %q: DNS port %d is 0, 53 or an intercept port", t.Name, t.DNSPort)
		case slices.Contains(s.InterceptPorts, StandardDNSPort):
			return fmt.Errorf("tenant %q: DNS is intercepted, so port 53 cannot be a TCP intercept port", t.Name)
		case t.DNS > DNSIntercept:
			return fmt.Errorf("tenant %q: unknown DNS mode %d", t.Name, t.DNS)
		}
		if other, ok := ports[t.DNSPort]; ok {
			return fmt.Errorf("tenant %q: DNS port %d is already the listener or DNS port of %q", t.Name, t.DNSPort, other)
		}
		ports[t.DNSPort] = t.Name
	}
	return nil
}

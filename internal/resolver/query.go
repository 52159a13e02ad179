package resolver

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxCNAMEChain bounds how many CNAME hops are followed in one answer.
	maxCNAMEChain = 8
	// ednsSize is the advertised UDP payload size (DNS flag day 2020).
	ednsSize = 1232
)

var (
	errCNAMEChain = errors.New("CNAME chain longer than 8 hops or looping")
	errBadReply   = errors.New("reply does not match the question")
)

// famResult is the outcome of querying one address family.
type famResult struct {
	addrs     []netip.Addr
	ttl       uint32   // minimum over the records used, 0 if none
	canonical string   // FQDN at the end of the CNAME chain
	aliases   []string // the CNAME targets followed (FQDNs), in order
	rrs       []dns.RR // the records of a type other than A and AAAA (Query)
	dropped   int      // records of such a type beyond Config.MaxAddrs
	server    string
	err       *LookupError
}

// isFailure reports whether e is a failure worth trying another server for
// (as opposed to an authoritative NXDOMAIN/NODATA).
func isFailure(e *LookupError) bool { return failRank(e) > 0 }

// queryFamily asks the servers in turn for qtype records of qname until one
// gives a definite answer or ctx's deadline passes. Each try gets an equal
// share of the remaining time so later servers still get a chance.
func (r *Resolver) queryFamily(ctx context.Context, name, qname string, qtype uint16) famResult {
	deadline, _ := ctx.Deadline()
	slots := r.attempts * len(r.servers)
	var worst *LookupError
	for i := range slots {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			break
		}
		server := r.servers[i%len(r.servers)]
		tctx, cancel := context.WithTimeout(ctx, remaining/time.Duration(slots-i))
		res := r.tryServer(tctx, name, qname, qtype, server)
		cancel()
		if !isFailure(res.err) {
			return res
		}
		if failRank(res.err) >= failRank(worst) {
			worst = res.err
		}
	}
	if worst == nil {
		worst = newError(name, ErrTimeout, "", nil)
	}
	return famResult{err: worst}
}

// tryServer sends one question to one server and classifies the reply.
func (r *Resolver) tryServer(ctx context.Context, name, qname string, qtype uint16, server string) famResult {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.SetEdns0(ednsSize, false)
	resp, err := r.exchange(ctx, m, server)
	if err != nil {
		kind := ErrNetwork
		if isTimeout(err) {
			kind = ErrTimeout
		} else if errors.Is(err, errBadReply) {
			kind = ErrServerFailure
		}
		return famResult{err: newError(name, kind, server, err)}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return famResult{err: newError(name, ErrNXDomain, server, nil)}
	default:
		return famResult{err: &LookupError{Name: name, Kind: ErrServerFailure, Server: server, Rcode: resp.Rcode}}
	}
	if qtype != dns.TypeA && qtype != dns.TypeAAAA {
		return r.records(resp, name, qname, qtype, server)
	}
	addrs, ttl, aliases, err := extract(resp, qname, qtype)
	if err != nil {
		return famResult{err: newError(name, ErrServerFailure, server, err)}
	}
	if len(addrs) == 0 {
		return famResult{aliases: aliases, err: newError(name, ErrNoAddresses, server, nil)}
	}
	return famResult{addrs: addrs, ttl: ttl, canonical: chainEnd(qname, aliases), aliases: aliases, server: server}
}

// chainEnd is the last name of a CNAME chain that starts at qname.
func chainEnd(qname string, aliases []string) string {
	if len(aliases) > 0 {
		return aliases[len(aliases)-1]
	}
	return qname
}

// exchange sends m over UDP and repeats it over TCP if the reply was
// truncated, then checks the reply answers the question asked.
func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	resp, _, err := r.udp.ExchangeContext(ctx, m, server)
	// A truncated UDP reply may also fail to unpack; TCP is the fix for both.
	if resp != nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	q := m.Question[0]
	if !resp.Response || len(resp.Question) != 1 || resp.Question[0].Qtype != q.Qtype ||
		resp.Question[0].Qclass != q.Qclass || !strings.EqualFold(resp.Question[0].Name, q.Name) {
		return nil, errBadReply
	}
	return resp, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// extract follows the CNAME chain that starts at qname inside resp's answer
// section and returns the qtype addresses owned by the end of the chain,
// and the chain's targets in order (at most maxCNAMEChain; a longer chain
// or a loop is an error). Records owned by any other name are ignored: a
// server (or spoofer) cannot slip in addresses for a name that was not
// asked about.
func extract(resp *dns.Msg, qname string, qtype uint16) (addrs []netip.Addr, ttl uint32, aliases []string, err error) {
	target, ttl, aliases, err := followChain(resp, qname)
	if err != nil {
		return nil, 0, nil, err
	}
	for _, rr := range owned(resp.Answer, target, qtype) {
		var ip net.IP
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A
		case *dns.AAAA:
			ip = v.AAAA
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		ttl = min(ttl, rr.Header().Ttl)
		addrs = append(addrs, a.Unmap())
	}
	if len(addrs) == 0 {
		ttl = 0
	}
	return addrs, ttl, aliases, nil
}

// followChain follows the CNAME chain that starts at qname inside resp's
// answer section, at most maxCNAMEChain hops (a longer chain or a loop is
// an error), and returns its end, the chain's targets in order and the
// lowest TTL of the CNAMEs (MaxUint32 without any).
func followChain(resp *dns.Msg, qname string) (target string, ttl uint32, aliases []string, err error) {
	target, ttl = qname, math.MaxUint32
	for hops := 0; ; hops++ {
		cn := findCNAME(resp.Answer, target)
		if cn == nil {
			return target, ttl, aliases, nil
		}
		if hops == maxCNAMEChain {
			return "", 0, nil, errCNAMEChain
		}
		ttl = min(ttl, cn.Hdr.Ttl)
		target = cn.Target
		aliases = append(aliases, target)
	}
}

// owned returns the class IN records of qtype in rrs owned by name.
func owned(rrs []dns.RR, name string, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		h := rr.Header()
		if h.Class == dns.ClassINET && h.Rrtype == qtype && strings.EqualFold(h.Name, name) {
			out = append(out, rr)
		}
	}
	return out
}

func findCNAME(rrs []dns.RR, owner string) *dns.CNAME {
	for _, rr := range rrs {
		if cn, ok := rr.(*dns.CNAME); ok && cn.Hdr.Class == dns.ClassINET && strings.EqualFold(cn.Hdr.Name, owner) {
			return cn
		}
	}
	return nil
}

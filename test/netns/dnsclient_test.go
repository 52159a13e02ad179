package netns

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Resolver addresses a tenant may be configured with: none of them runs a
// DNS server; every query to them, as to any address, is egressfw's.
const (
	ipForeignDNS  = "192.0.2.53"      // a public resolver the tenant picked
	ip6ForeignDNS = "2001:db8:99::53" // the same over IPv6
	ipStubDNS     = "127.0.0.53"      // systemd-resolved's stub address
)

// resolving is w with /etc/resolv.conf naming nameserver: the command runs
// in a mount namespace of its own where the file is bind-mounted over (the
// uid is taken after the mount, which needs root), so glibc, Go and curl
// resolve through nameserver as a tenant configured that way would.
func (tp *topo) resolving(w who, nameserver string) who {
	tp.t.Helper()
	f := tp.file("resolv-" + strings.NewReplacer(":", "_", ".", "_").Replace(nameserver) + ".conf")
	if err := os.WriteFile(f, []byte("nameserver "+nameserver+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		tp.t.Fatal(err)
	}
	wrap := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, f}
	if w.uid != 0 {
		u := strconv.Itoa(w.uid)
		wrap = append(wrap, "setpriv", "--reuid", u, "--regid", u, "--clear-groups", "--")
		w.uid = 0
	}
	w.wrap = append(wrap, w.wrap...)
	w.label += "@" + nameserver
	return w
}

// digRes is what dig saw: the response status, the answer records
// (fields joined by one space) and the Extended DNS Error, if any.
type digRes struct {
	status  string // NOERROR, NXDOMAIN, REFUSED, ...; "" when no reply came
	answers []string
	ede     string
	out     string
}

func (r digRes) String() string {
	return fmt.Sprintf("status %q answers %q ede %q", r.status, r.answers, r.ede)
}

// timedOut reports whether dig's query went out and nothing came back
// (dropped on the way).
func (r digRes) timedOut() bool { return strings.Contains(r.out, "timed out") }

// unanswered reports whether dig's query went out and got no DNS reply:
// timed out, or refused by a reset or an ICMP error. A query dig could not
// even send (its socket's setup failed, e.g. binding to an address it
// lacks) is not unanswered: it proves nothing about the rules.
func (r digRes) unanswered() bool {
	if strings.Contains(r.out, "setup with") {
		return false
	}
	return r.timedOut() || strings.Contains(r.out, "communications error") || strings.Contains(r.out, "Connection to")
}

// has reports whether an answer record contains s.
func (r digRes) has(s string) bool {
	for _, a := range r.answers {
		if strings.Contains(a, s) {
			return true
		}
	}
	return false
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digEDE    = regexp.MustCompile(`; EDE: (.*)`)
)

// dig asks server for name as w: one try, two seconds; tcp over TCP.
func (tp *topo) dig(w who, server, name, qtype string, tcp bool, extra ...string) digRes {
	tp.t.Helper()
	argv := append([]string{"dig"}, extra...)
	argv = append(argv, "@"+server, name, qtype, "+time=2", "+tries=1", "+noall", "+comments", "+answer")
	if tcp {
		argv = append(argv, "+tcp")
	}
	r := tp.run(w, 10*time.Second, argv...)
	res := digRes{out: r.out + r.errOut}
	if m := digStatus.FindStringSubmatch(r.out); m != nil {
		res.status = m[1]
	}
	if m := digEDE.FindStringSubmatch(r.out); m != nil {
		res.ede = m[1]
	}
	for _, line := range strings.Split(r.out, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ";") {
			res.answers = append(res.answers, strings.Join(strings.Fields(line), " "))
		}
	}
	return res
}

// dnsLog waits for the dns log line from index i about name whose fields
// contain want.
func (d *daemon) dnsLog(i int, name string, want map[string]string) (logLine, bool) {
	return d.waitLogFrom(i, func(l logLine) bool {
		if l.str("msg") != "dns" || l.str("name") != name {
			return false
		}
		for k, v := range want {
			if l.str(k) != v {
				return false
			}
		}
		return true
	}, 3*time.Second)
}

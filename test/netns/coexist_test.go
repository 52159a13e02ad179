package netns

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// foreignTables are tables of other owners: a Docker-like ip nat / ip
// filter pair and an inet table with sets.
const foreignTables = `
table ip nat {
	chain PREROUTING { type nat hook prerouting priority dstnat; policy accept; fib daddr type local jump DOCKER; }
	chain OUTPUT { type nat hook output priority -100; policy accept; ip daddr != 127.0.0.0/8 fib daddr type local jump DOCKER; }
	chain POSTROUTING { type nat hook postrouting priority srcnat; policy accept; ip saddr 172.17.0.0/16 oifname != "docker0" masquerade; }
	chain DOCKER { iifname "docker0" return; }
}
table ip filter {
	chain FORWARD { type filter hook forward priority filter; policy drop; jump DOCKER-USER; }
	chain DOCKER-USER { return; }
	chain DOCKER { }
}
table inet other {
	set blocked4 { type ipv4_addr; flags interval; elements = { 192.0.2.0/28, 203.0.113.128/25 }; }
	set ports { type inet_service; elements = { 22, 8443 }; }
	chain input { type filter hook input priority filter + 10; policy accept; ip saddr @blocked4 drop; tcp dport @ports accept; }
	chain output { type filter hook output priority filter + 10; policy accept; ip daddr @blocked4 drop; }
}
`

// TestCoexistence: tables of other owners are identical (nft list table
// text) before egressfw starts, while it runs, after a reload and after it
// stops, and so are other owners' ip rules; the data path works with them.
func TestCoexistence(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	cmd := nsCmd(tp.host, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(foreignTables)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("load foreign tables: %v: %s", err, out)
	}
	tp.ip(tp.host, "rule", "add", "fwmark", "0x80000/0xff0000", "lookup", "52", "pref", "5270")
	tp.ip(tp.host, "-6", "rule", "add", "fwmark", "0x80000/0xff0000", "lookup", "52", "pref", "5270")
	snapshot := func() map[string]string {
		s := map[string]string{}
		for _, tbl := range []string{"ip nat", "ip filter", "inet other"} {
			s[tbl] = tp.nft(append([]string{"list", "table"}, strings.Fields(tbl)...)...)
		}
		for _, fam := range []string{"-4", "-6"} {
			var keep []string
			for _, l := range strings.Split(tp.ip(tp.host, fam, "rule", "show"), "\n") {
				if !strings.Contains(l, "lookup 1515") {
					keep = append(keep, l)
				}
			}
			s["ip "+fam+" rule"] = strings.Join(keep, "\n")
		}
		return s
	}
	before := snapshot()
	compare := func(stage string) {
		t.Helper()
		for k, v := range snapshot() {
			if v != before[k] {
				t.Errorf("%s: %s changed:\nbefore:\n%s\nnow:\n%s", stage, k, before[k], v)
			}
		}
	}
	d := tp.startEgressfw(tp.config(cfgOpts{}))
	compare("after start")
	if !strings.Contains(tp.nft("list", "tables"), "table inet egressfw") {
		t.Fatal("egressfw's table is missing")
	}
	check(t, "public with foreign tables", tp.curl(tp.inCgroup("a"), args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/")...), okPublic)
	check(t, "bi-tool with foreign tables", tp.curl(tp.inCgroup("a"), "http://"+ipBITool+"/"), deniedInt)

	i := d.since()
	tp.writeConfig("egressfw.toml", tp.config(cfgOpts{tenants: tp.tenant("a", "a", 0, `deny_domains = ["denied.example.com"]`)}))
	d.signal(syscall.SIGHUP)
	if _, ok := d.waitLogFrom(i, func(l logLine) bool { return l.str("msg") == "config reloaded" }, 5*time.Second); !ok {
		t.Fatalf("no reload logged:\n%s", d.logText())
	}
	compare("after reload")
	check(t, "public after reload", tp.curl(tp.inCgroup("a"), args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/")...), okPublic)

	d.signal(syscall.SIGTERM)
	if code, ok := d.wait(10 * time.Second); !ok || code != 0 {
		t.Fatalf("egressfw stop: exited=%v code %d", ok, code)
	}
	compare("after stop")
	out, err := nsCmd(tp.host, egressfwBin, "cleanup", "--config", d.cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("egressfw cleanup: %v: %s", err, out)
	}
	compare("after cleanup")
	if strings.Contains(tp.nft("list", "tables"), "egressfw") {
		t.Errorf("egressfw's table is still there after cleanup")
	}
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0", n)
	}
}

// nft runs the nft CLI in the host namespace.
func (tp *topo) nft(args ...string) string {
	tp.t.Helper()
	out, err := nsCmd(tp.host, append([]string{"nft"}, args...)...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("nft %v: %v: %s", args, err, out)
	}
	return string(out)
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// env is everything the peers share.
type env struct {
	dir      string // work dir (configs, logs, certs)
	confDir  string // bench/conf (templates)
	egressfw string
	efprof   string
	cg       cgroups
	workers  int
}

// peer is one way the tenant's traffic leaves: direct or through a proxy.
type peer interface {
	name() string
	start() error
	// pids are the processes whose RSS and CPU count (nil for direct).
	pids() []int
	// cgroup is the directory of the cgroup the proxy runs in, alone
	// ("" for direct): its cpu.stat is the proxy's CPU.
	cgroup() string
	// connOnly peers take part in the new-connection tests only.
	connOnly() bool
	stop()
}

// proxyCgroup returns the cgroup of the named proxy, making it if it does
// not exist (MkdirAll on every call: outside any timed load).
func (e *env) proxyCgroup(name string) string {
	rel := cgBase + "/proxy-" + name
	_ = e.cg.make(rel)
	return e.cg.dir(rel)
}

// render fills bench/conf/NAME.tmpl into dir/out.
func (e *env) render(name, out string, data any) (string, error) {
	t, err := template.ParseFiles(filepath.Join(e.confDir, name+".tmpl"))
	if err != nil {
		return "", fmt.Errorf("parse template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	path := filepath.Join(e.dir, out)
	return path, os.WriteFile(path, b.Bytes(), 0o644)
}

type tenantCfg struct{ Name, Cgroup string }

// egressfwConfig writes an egressfw config with n tenants; the benchmarked
// one ("bench", cgroup efb/tenant) is the last, so with 1,000 tenants it
// holds the highest slot and port.
func (e *env) egressfwConfig(out string, n int) (string, error) {
	var ts []tenantCfg
	for i := 1; i < n; i++ {
		ts = append(ts, tenantCfg{fmt.Sprintf("t%04d", i), fmt.Sprintf("%s/t%04d", cgBase, i)})
	}
	ts = append(ts, tenantCfg{"bench", tenantCg})
	return e.render("egressfw.toml", out, map[string]any{"DNS": dnsAddr, "Tenants": ts})
}

type direct struct{}

func (direct) name() string   { return "direct" }
func (direct) start() error   { return nil }
func (direct) pids() []int    { return nil }
func (direct) cgroup() string { return "" }
func (direct) connOnly() bool { return false }
func (direct) stop()          {}

// egressfwPeer runs `egressfw run` (or the efprof variant) in the host netns.
type egressfwPeer struct {
	e       *env
	cfg     string
	tenants int
	bin     string // egressfw, or efprof for profiling
	label   string // name, if not "egressfw"
	args    []string
	p       *proc
}

func (p *egressfwPeer) name() string {
	if p.label != "" {
		return p.label
	}
	return "egressfw"
}

func (p *egressfwPeer) start() error {
	args := append([]string{"run", "--config", p.cfg}, p.args...)
	if p.bin == p.e.efprof {
		args = append([]string{"-config", p.cfg}, p.args...)
	}
	var err error
	if p.p, err = startInCgroup(p.e.dir, nsHost, p.cgroup(), p.name(), p.bin, args...); err != nil {
		return err
	}
	if _, _, err := p.p.waitLog("egressfw started", 0, 60*time.Second); err != nil {
		p.p.stop(syscall.SIGKILL)
		return err
	}
	tuneConntrack()
	return nil
}

func (p *egressfwPeer) pids() []int    { return []int{p.p.pid()} }
func (p *egressfwPeer) cgroup() string { return p.e.proxyCgroup(p.name()) }
func (p *egressfwPeer) connOnly() bool { return false }

// stop ends egressfw and removes its rules (a normal stop keeps them).
func (p *egressfwPeer) stop() {
	p.p.stop(syscall.SIGTERM)
	_ = inNS(nsHost, p.e.egressfw, "cleanup", "--config", p.cfg)
}

// haproxyPeer installs egressfw's rules (egressfw run, then kill -9: the
// rules stay) and binds HAProxy to the tenant's listener port.
type haproxyPeer struct {
	e       *env
	cfg     string // egressfw config for the rules
	workers int    // nbthread
	p       *proc
}

// name is "haproxy" at the machine's default thread count (one per core),
// "haproxy-N" at N threads.
func (p *haproxyPeer) name() string { return workersName("haproxy", p.workers, p.e.workers) }

func workersName(base string, n, dflt int) string {
	if n == dflt {
		return base
	}
	return fmt.Sprintf("%s-%d", base, n)
}

func (p *haproxyPeer) cgroup() string { return p.e.proxyCgroup(p.name()) }
func (p *haproxyPeer) connOnly() bool { return p.workers != p.e.workers }

func (p *haproxyPeer) start() error {
	ef := &egressfwPeer{e: p.e, cfg: p.cfg, tenants: 1, bin: p.e.egressfw}
	if err := ef.start(); err != nil {
		return fmt.Errorf("install rules for haproxy: %w", err)
	}
	ef.p.stop(syscall.SIGKILL)
	cfg, err := p.e.render("haproxy.cfg", "haproxy.cfg", map[string]any{"Workers": p.workers, "DNS": dnsAddr})
	if err != nil {
		return err
	}
	if p.p, err = startInCgroup(p.e.dir, nsHost, p.cgroup(), p.name(), "haproxy", "-db", "-f", cfg); err != nil {
		return err
	}
	return waitListen(p.p.pid(), 15001, 10*time.Second)
}

func (p *haproxyPeer) pids() []int { return []int{p.p.pid()} }

func (p *haproxyPeer) stop() {
	p.p.stop(syscall.SIGTERM)
	_ = inNS(nsHost, p.e.egressfw, "cleanup", "--config", p.cfg)
}

// nginxPeer is nginx (stream + ssl_preread, http proxy) behind REDIRECT
// rules of its own that match only the tenant's cgroup.
type nginxPeer struct {
	e       *env
	workers int // worker_processes
	p       *proc
}

// name is "nginx" at the machine's default worker count (Debian's
// worker_processes auto: one per core), "nginx-N" at N workers.
func (p *nginxPeer) name() string   { return workersName("nginx", p.workers, p.e.workers) }
func (p *nginxPeer) cgroup() string { return p.e.proxyCgroup(p.name()) }
func (p *nginxPeer) connOnly() bool { return p.workers != p.e.workers }

func (p *nginxPeer) start() error {
	rules, err := p.e.render("nginx-redirect.nft", "nginx-redirect.nft",
		map[string]any{"CgroupForNft": p.e.cg.nftPath(tenantCg)})
	if err != nil {
		return err
	}
	if err := inNS(nsHost, "nft", "-f", rules); err != nil {
		return err
	}
	tuneConntrack()
	dnsHost, _, _ := strings.Cut(dnsAddr, ":")
	cfg, err := p.e.render("nginx-proxy.conf", "nginx-proxy.conf",
		map[string]any{"Workers": p.workers, "DNSHost": dnsHost, "Dir": p.e.dir})
	if err != nil {
		return err
	}
	if p.p, err = startInCgroup(p.e.dir, nsHost, p.cgroup(), "nginx-proxy", "nginx", "-e", filepath.Join(p.e.dir, "nginx-proxy-error.log"),
		"-p", p.e.dir, "-c", cfg); err != nil {
		return err
	}
	if err := waitListen(p.p.pid(), 15443, 10*time.Second); err != nil {
		return err
	}
	// Wait for the workers too.
	for range 200 {
		if len(family(p.p.pid())) > p.workers {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("nginx workers did not start")
}

func (p *nginxPeer) pids() []int { return family(p.p.pid()) }

func (p *nginxPeer) stop() {
	p.p.stop(syscall.SIGTERM)
	_ = inNS(nsHost, "nft", "delete", "table", "inet", "efbnginx")
}

// servers are the site and the DNS server in the server namespace.
type servers struct {
	origin, dns *proc
}

func startServers(e *env, dnsd string) (*servers, error) {
	s := &servers{}
	var err error
	s.dns, err = startInCgroup(e.dir, nsSrv, e.proxyCgroup("servers"), "dnsd", dnsd, "-listen", dnsAddr, "-ttl", "60",
		"-record", siteName+"="+siteIP)
	if err != nil {
		return nil, err
	}
	cfg, err := e.render("nginx-origin.conf", "nginx-origin.conf",
		map[string]any{"Workers": e.workers, "Dir": e.dir, "Site": siteIP})
	if err != nil {
		s.stop()
		return nil, err
	}
	s.origin, err = startInCgroup(e.dir, nsSrv, e.proxyCgroup("servers"), "nginx-origin", "nginx", "-e", filepath.Join(e.dir, "nginx-origin-error.log"),
		"-p", e.dir, "-c", cfg)
	if err == nil {
		err = waitListen(s.origin.pid(), 443, 10*time.Second)
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *servers) stop() {
	if s.origin != nil {
		s.origin.stop(syscall.SIGTERM)
	}
	if s.dns != nil {
		s.dns.stop(syscall.SIGTERM)
	}
}

// versions of the peers, for the report.
func versions(e *env) map[string]string {
	out := map[string]string{}
	run := func(key string, name string, args ...string) {
		b, _ := execOut(name, args...)
		out[key] = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	run("egressfw", e.egressfw, "version")
	run("haproxy", "haproxy", "-v")
	run("nginx", "nginx", "-v")
	run("go", "go", "version")
	run("kernel", "uname", "-srm")
	run("cpu", "sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
	run("os", "sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\"")
	out["cores"] = strconv.Itoa(e.workers)
	return out
}

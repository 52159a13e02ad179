package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The topology: two network namespaces joined by a veth pair.
//
//	efb-host (10.99.0.1)  the "host": tenant (loadgen, in cgroup efb/tenant)
//	                      and the proxy under test, egressfw's rules
//	efb-srv  (10.99.0.2)  DNS server; the public site on 203.0.113.10
//
// Names carry the harness's pid, so that two runs on one machine (two
// branches compared side by side) do not delete each other's namespaces,
// links or cgroups.
var (
	runID  = strconv.Itoa(os.Getpid())
	nsHost = "efb-host-" + runID
	nsSrv  = "efb-srv-" + runID
	vethH  = "efh" + runID
	vethS  = "efs" + runID
	// cgBase is the bench's cgroup (under the cgroup2 root): the tenants'
	// cgroups and one per proxy under test live in it.
	cgBase = "efb" + runID
)

const (
	hostIP   = "10.99.0.1"
	srvIP    = "10.99.0.2"
	siteIP   = "203.0.113.10"
	siteName = "origin.example.com"
	dnsAddr  = srvIP + ":53"
)

func nsPath(ns string) string { return "/run/netns/" + ns }

// sh runs a command and fails with its output.
func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs a command in a namespace (nsenter keeps /sys, unlike ip netns exec).
func inNS(ns string, name string, args ...string) error {
	return sh("nsenter", append([]string{"--net=" + nsPath(ns), "--", name}, args...)...)
}

func setupNetns() error {
	teardownNetns()
	steps := [][]string{
		{"ip", "netns", "add", nsHost},
		{"ip", "netns", "add", nsSrv},
		{"ip", "link", "add", vethH, "netns", nsHost, "type", "veth", "peer", "name", vethS, "netns", nsSrv},
	}
	for _, s := range steps {
		if err := sh(s[0], s[1:]...); err != nil {
			return err
		}
	}
	nsSteps := []struct {
		ns   string
		args []string
	}{
		{nsHost, []string{"ip", "link", "set", "lo", "up"}},
		{nsSrv, []string{"ip", "link", "set", "lo", "up"}},
		{nsHost, []string{"ip", "addr", "add", hostIP + "/30", "dev", vethH}},
		{nsSrv, []string{"ip", "addr", "add", srvIP + "/30", "dev", vethS}},
		{nsSrv, []string{"ip", "addr", "add", siteIP + "/32", "dev", "lo"}},
		{nsHost, []string{"ip", "link", "set", vethH, "up"}},
		{nsSrv, []string{"ip", "link", "set", vethS, "up"}},
		{nsHost, []string{"ip", "route", "add", "203.0.113.0/24", "via", srvIP}},
	}
	for _, s := range nsSteps {
		if err := inNS(s.ns, s.args[0], s.args[1:]...); err != nil {
			return err
		}
	}
	// Same for every peer: enough ephemeral ports and backlog for
	// tens of thousands of short connections per run.
	for _, ns := range []string{nsHost, nsSrv} {
		for _, kv := range []string{"net.ipv4.ip_local_port_range=1024 65000", "net.ipv4.tcp_tw_reuse=1",
			"net.core.somaxconn=8192", "net.ipv4.tcp_max_syn_backlog=8192"} {
			if err := inNS(ns, "sysctl", "-q", "-w", kv); err != nil {
				return err
			}
		}
	}
	return nil
}

// tuneConntrack shortens TIME_WAIT tracking in the host namespace once
// conntrack is active there, so back-to-back runs do not fill the table.
func tuneConntrack() {
	_ = inNS(nsHost, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=5")
}

func teardownNetns() {
	for _, ns := range []string{nsHost, nsSrv} {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// cgroupRoot finds the cgroup2 mount from /proc/self/mountinfo.
func cgroupRoot() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, pfields := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(pfields) >= 1 && pfields[0] == "cgroup2" {
			return fields[4], nil
		}
	}
	return "", fmt.Errorf("no cgroup2 mount in /proc/self/mountinfo")
}

// cgroups is the bench's cgroup tree under the cgroup2 root.
type cgroups struct {
	root string
}

func (c cgroups) dir(rel string) string { return filepath.Join(c.root, rel) }

// nftPath is rel as the nft CLI wants it: relative to /sys/fs/cgroup.
func (c cgroups) nftPath(rel string) string {
	p, err := filepath.Rel("/sys/fs/cgroup", c.dir(rel))
	if err != nil || strings.HasPrefix(p, "..") {
		return rel
	}
	return p
}

func (c cgroups) make(rels ...string) error {
	for _, r := range rels {
		if err := os.MkdirAll(c.dir(r), 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", r, err)
		}
	}
	return nil
}

// removeAll kills what is left in cgBase (after Ctrl-C: the peers and
// servers were not stopped, and nginx workers outlive their master) and
// deletes cgBase/* and cgBase, leaves first.
func (c cgroups) removeAll() {
	if os.WriteFile(filepath.Join(c.dir(cgBase), "cgroup.kill"), []byte("1"), 0) == nil {
		for range 100 { // until the kernel has emptied it
			if b, err := os.ReadFile(filepath.Join(c.dir(cgBase), "cgroup.events")); err != nil || strings.Contains(string(b), "populated 0") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	entries, _ := os.ReadDir(c.dir(cgBase))
	for _, e := range entries {
		if e.IsDir() {
			_ = os.Remove(c.dir(cgBase + "/" + e.Name()))
		}
	}
	_ = os.Remove(c.dir(cgBase))
}

// writeCerts makes a test CA and an ECDSA P-256 certificate for siteName.
func writeCerts(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "egressfw bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate site key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: siteName},
		DNSNames: []string{siteName}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create site certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode site key: %w", err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(filepath.Join(dir, "site.pem"), chain, 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "site.key"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// writeSite creates the site's files: / is answered inline by nginx, /big is
// a 64 MiB file for the bulk downloads.
func writeSite(dir string) error {
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return fmt.Errorf("create site root: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "nginx-tmp"), 0o777); err != nil {
		return fmt.Errorf("create nginx temp dir: %w", err)
	}
	buf := make([]byte, 64<<20)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("fill bulk file: %w", err)
	}
	return os.WriteFile(filepath.Join(www, "big"), buf, 0o644)
}

// tenantCg is the benchmarked tenant's cgroup (relative to the root).
var tenantCg = cgBase + "/tenant"

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// loadResult is loadgen's JSON.
type loadResult struct {
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	FirstErr string  `json:"first_error"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Bytes    int64   `json:"bytes"`
	MBps     float64 `json:"mbytes_per_s"`
	Open     int     `json:"open"`
	Total    int64   `json:"total"`
}

func execOut(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// Metric names, in report order.
const (
	mHTTPSRate = "https_conn_per_s"
	mHTTPSP50  = "https_p50_ms"
	mHTTPSP99  = "https_p99_ms"
	mHTTPSCPU  = "https_proxy_cpu_us_per_conn"
	mHTTPSPT   = "https_proxy_ptime_us_per_conn"
	mHTTPSSys  = "https_proxy_system_pct"
	mHTTPSCli  = "https_loadgen_cpu_us_per_conn"
	mHTTPSSrv  = "https_servers_cpu_us_per_conn"
	mHTTPSAll  = "https_machine_cpu_us_per_conn"
	mHTTPSBusy = "https_machine_busy_pct"
	mHTTPCPU   = "http_proxy_cpu_us_per_conn"
	mHTTPPT    = "http_proxy_ptime_us_per_conn"
	mHTTPSys   = "http_proxy_system_pct"
	mHTTPCli   = "http_loadgen_cpu_us_per_conn"
	mHTTPSrv   = "http_servers_cpu_us_per_conn"
	mHTTPAll   = "http_machine_cpu_us_per_conn"
	mHTTPRate  = "http_conn_per_s"
	mHTTPP50   = "http_p50_ms"
	mHTTPP99   = "http_p99_ms"
	mBulk1     = "bulk1_MB_per_s"
	mBulk8     = "bulk8_MB_per_s"
	mBulkHTTP1 = "http_bulk1_MB_per_s"
	mBulkHTTP8 = "http_bulk8_MB_per_s"
	mIdleRSS   = "idle_rss_KiB_per_conn"
	mIdleOpen  = "idle_conns_open"
	mIdleFDs   = "idle_fds_per_conn"
	mApplyRel  = "reload_1_to_1000_ms"
	mApplyCold = "start_1000_ms"
	mRate1     = "rate_1_tenant"
	mRate1000  = "rate_1000_tenants"
)

// samples holds every run's value per peer and metric.
type samples map[string]map[string][]float64

func (s samples) add(peer, metric string, v float64) {
	if s[peer] == nil {
		s[peer] = map[string][]float64{}
	}
	s[peer][metric] = append(s[peer][metric], v)
}

// timing is how long each measurement runs.
type timing struct {
	conn, bulk, warmup time.Duration
	conc, idleN        int
}

func (t timing) loadArgs(extra ...string) []string {
	return append([]string{"-warmup", t.warmup.String()}, extra...)
}

// measurePeer runs every traffic figure for one started peer.
func (r *runner) measurePeer(p peer) error {
	if p.pids() != nil && !p.connOnly() && r.sel.part("idle") {
		if err := r.measureIdle(p); err != nil {
			return err
		}
		// Let the kernel retire the 16,000 closed sockets (and their
		// conntrack entries) before the rate is measured.
		time.Sleep(3 * time.Second)
	}
	for _, c := range []connTest{
		{"https", "443", true, mHTTPSRate, mHTTPSP50, mHTTPSP99, mHTTPSCPU, mHTTPSPT, mHTTPSSys, mHTTPSCli, mHTTPSSrv, mHTTPSAll},
		{"http", "80", false, mHTTPRate, mHTTPP50, mHTTPP99, mHTTPCPU, mHTTPPT, mHTTPSys, mHTTPCli, mHTTPSrv, mHTTPAll},
	} {
		if !r.sel.part(c.part) {
			continue
		}
		if err := r.measureConn(p, c); err != nil {
			return err
		}
	}
	if p.connOnly() {
		return nil
	}
	// HTTPS bulk is spliced as it is; plain-HTTP bulk (httpbulk) runs
	// through the judged relay: every request of the keep-alive connection
	// is read and judged, each 64 MiB body spliced by its length.
	for _, b := range []struct {
		part, port string
		streams    int
		metric     string
	}{{"bulk", "443", 1, mBulk1}, {"bulk", "443", 8, mBulk8}, {"httpbulk", "80", 1, mBulkHTTP1}, {"httpbulk", "80", 8, mBulkHTTP8}} {
		if !r.sel.part(b.part) {
			continue
		}
		res, err := r.load(p.name(), b.part, r.t.loadArgs("-mode", "bulk", "-addr", siteIP+":"+b.port, "-path", "/big",
			"-tls="+strconv.FormatBool(b.port == "443"), "-c", strconv.Itoa(b.streams), "-d", r.t.bulk.String())...)
		if err != nil {
			return err
		}
		r.s.add(p.name(), b.metric, res.MBps)
	}
	return nil
}

// connTest is one new-connection test and the metrics it records.
type connTest struct {
	part, port                                     string
	tls                                            bool
	rate, p50, p99, cpu, ptime, sys, cli, srv, all string
}

// measureConn runs one new-connection test. The proxy's CPU is its
// cgroup's usage over the whole load (warm-up included) divided by every
// connection made; process times (utime+stime of its processes, 10 ms
// ticks) are kept beside it, and the load generator's and the servers'
// cgroups say where the rest of the machine went.
func (r *runner) measureConn(p peer, c connTest) error {
	tenant, srv := r.e.cg.dir(tenantCg), r.e.proxyCgroup("servers")
	cg0, pt0, m0 := readCgCPU(p.cgroup()), cpuTicks(p.pids()), machineCPU()
	cli0, srv0 := readCgCPU(tenant), readCgCPU(srv)
	res, err := r.load(p.name(), "conn", r.t.loadArgs("-mode", "conn", "-addr", siteIP+":"+c.port,
		"-tls="+strconv.FormatBool(c.tls), "-c", strconv.Itoa(r.t.conc), "-d", r.t.conn.String())...)
	if err != nil {
		return err
	}
	cg, pt, m1 := readCgCPU(p.cgroup()).sub(cg0), cpuTicks(p.pids())-pt0, machineCPU()
	cli, sv := readCgCPU(tenant).sub(cli0), readCgCPU(srv).sub(srv0)
	r.s.add(p.name(), c.rate, res.Rate)
	r.s.add(p.name(), c.p50, res.P50ms)
	r.s.add(p.name(), c.p99, res.P99ms)
	conns := float64(res.Total)
	if conns == 0 || res.OK == 0 {
		return nil
	}
	if p.cgroup() != "" {
		r.s.add(p.name(), c.cpu, float64(cg.usage)/conns)
		r.s.add(p.name(), c.ptime, float64(pt)*1e4/conns)
		if cg.user+cg.system > 0 {
			r.s.add(p.name(), c.sys, 100*float64(cg.system)/float64(cg.user+cg.system))
		}
		r.logf("  %-9s cpu per conn: cgroup %.0f µs (user %.0f, system %.0f), process times %.0f µs; loadgen %.0f µs, servers %.0f µs",
			p.name(), float64(cg.usage)/conns, float64(cg.user)/conns, float64(cg.system)/conns, float64(pt)*1e4/conns,
			float64(cli.usage)/conns, float64(sv.usage)/conns)
	}
	r.s.add(p.name(), c.cli, float64(cli.usage)/conns)
	r.s.add(p.name(), c.srv, float64(sv.usage)/conns)
	r.s.add(p.name(), c.all, float64(m1.busy-m0.busy)*1e4/conns)
	if c.tls {
		r.s.add(p.name(), mHTTPSBusy, 100*float64(m1.busy-m0.busy)/float64(m1.total-m0.total))
	}
	return nil
}

// load runs loadgen and logs its result; errors inside a run are reported,
// not fatal (a peer that drops connections shows it in the table).
func (r *runner) load(peer, what string, args ...string) (loadResult, error) {
	res, err := runLoad(r.e.cg.dir(tenantCg), r.loadgen, args...)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w", peer, what, err)
	}
	r.logf("  %-8s %-5s %v -> ok=%d err=%d rate=%.0f/s p50=%.2fms p99=%.2fms MB/s=%.0f %s",
		peer, what, args[2:], res.OK, res.Errors, res.Rate, res.P50ms, res.P99ms, res.MBps, res.FirstErr)
	if res.Errors > 0 {
		r.errorsSeen = append(r.errorsSeen, fmt.Sprintf("%s %s: %d errors, first: %s", peer, what, res.Errors, res.FirstErr))
	}
	return res, nil
}

// measureIdle opens idleN idle proxied connections and records the proxy's
// RSS growth and descriptors per connection.
func (r *runner) measureIdle(p peer) error {
	// Warm up: the first connections initialise caches and pools.
	if _, err := runLoad(r.e.cg.dir(tenantCg), r.loadgen, "-mode", "conn", "-c", "4", "-d", "1s", "-warmup", "0s"); err != nil {
		return fmt.Errorf("%s idle warm-up: %w", p.name(), err)
	}
	time.Sleep(500 * time.Millisecond)
	rss0, fd0 := rssKiB(p.pids()), fdKinds(p.pids())
	il, err := startIdle(r.e.cg.dir(tenantCg), r.loadgen, "-n", strconv.Itoa(r.t.idleN), "-c", "64")
	if err != nil {
		return fmt.Errorf("%s idle: %w", p.name(), err)
	}
	defer il.close()
	time.Sleep(2 * time.Second) // let the proxy settle (GC, lazy frees)
	rss1, fd1 := rssKiB(p.pids()), fdKinds(p.pids())
	open := il.res.Open
	r.s.add(p.name(), mIdleOpen, float64(open))
	if open > 0 {
		r.s.add(p.name(), mIdleRSS, float64(rss1-rss0)/float64(open))
		fds := (fd1["socket"] + fd1["pipe"]) - (fd0["socket"] + fd0["pipe"])
		r.s.add(p.name(), mIdleFDs, float64(fds)/float64(open))
	}
	r.logf("  %-8s idle  open=%d/%d err=%d first=%q rss %d -> %d KiB, fds %v -> %v",
		p.name(), open, r.t.idleN, il.res.Errors, il.res.FirstErr, rss0, rss1, fd0, fd1)
	if il.res.Errors > 0 {
		r.errorsSeen = append(r.errorsSeen, fmt.Sprintf("%s idle: %d of %d connections failed, first: %s",
			p.name(), il.res.Errors, r.t.idleN, il.res.FirstErr))
	}
	return nil
}

// cpuStat is the machine's CPU time from /proc/stat, in ticks.
type cpuStat struct{ busy, total int64 }

func machineCPU() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var st cpuStat
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal
			st.total += n
			if i != 3 && i != 4 {
				st.busy += n
			}
		}
	}
	return st
}

package main

import (
	"flag"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cmdDNSLoad asks -server the same question -n times from -c workers, each
// on a connected UDP socket of its own, one query at a time, and prints
// {"n","ok","failed","us","qps","p50_us","p99_us"}: the answers that came
// back NOERROR with at least one record, the time all took, and the
// latency of those.
func cmdDNSLoad(args []string) error {
	fs := flag.NewFlagSet("dnsload", flag.ContinueOnError)
	server := fs.String("server", "", "ip:port")
	name := fs.String("name", "www.example.com", "the name asked")
	qtype := fs.String("type", "A", "the query type")
	n := fs.Int("n", 10000, "queries in all")
	c := fs.Int("c", 4, "workers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, ok := dns.StringToType[*qtype]
	if !ok {
		return fmt.Errorf("unknown type %q", *qtype)
	}
	per := *n / *c
	lat := make([][]time.Duration, *c)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	t0 := time.Now()
	for w := range *c {
		wg.Go(func() {
			conn, err := net.Dial("udp", *server)
			if err != nil {
				mu.Lock()
				failed += per
				mu.Unlock()
				return
			}
			defer conn.Close()
			dc := &dns.Conn{Conn: conn}
			m := new(dns.Msg).SetQuestion(dns.Fqdn(*name), t)
			for i := range per {
				m.Id = uint16(w<<12 + i)
				start := time.Now()
				_ = conn.SetDeadline(start.Add(2 * time.Second))
				var r *dns.Msg
				if err = dc.WriteMsg(m); err == nil {
					r, err = dc.ReadMsg()
				}
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				lat[w] = append(lat[w], time.Since(start))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) int64 {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))].Microseconds()
	}
	emit(map[string]any{"n": per * *c, "ok": len(all), "failed": failed, "us": elapsed.Microseconds(),
		"qps": float64(len(all)) / elapsed.Seconds(), "p50_us": pct(0.5), "p99_us": pct(0.99)})
	return nil
}

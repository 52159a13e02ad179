package nft

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/nft/nftspec"
)

// fakeContainers are n identities on ports that do not exist (100000 and
// up), labelled with slot 2, as many Docker containers would be.
func fakeContainers(n, from int) []nftspec.Container {
	out := make([]nftspec.Container, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, nftspec.Container{Port: 100000 + i, MAC: net.HardwareAddr{2, 0x10, 0, byte(i >> 16), byte(i >> 8), byte(i)},
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)}),
				netip.AddrFrom16([16]byte{0xfd, 0, 0x77, 1, 14: byte(i >> 8), 15: byte(i)})}, Slot: 2})
	}
	return out
}

// BenchmarkContainers measures container identity with 1 and 1,000
// labelled containers bound:
//
//   - apply/containers=N: a reload (Apply of the same spec, in place),
//     which refills the bridge table's sets;
//   - event/containers=N: one container event (one container gone, a new
//     one bound): one SetContainers, its element transaction and the
//     conntrack walk that forgets the freed addresses' flows;
//     event-elements/containers=N: the transaction alone;
//   - rate: 64-byte UDP datagrams a labelled container sends through the
//     bridge guard, the identity check and its tenant's forward chain to a
//     host behind the router, for 1 second, with 1 and with 1,000
//     containers bound, alternating in one run; reported as datagrams per
//     second at the receiver and their ratio (1,000 to 1).
func BenchmarkContainers(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("apply/containers=%d", n), func(b *testing.B) {
			ns := newNetns(b, false)
			m := ns.manager(b)
			spec := containerSpec()
			if err := m.Apply(spec, nil); err != nil {
				b.Fatal(err)
			}
			if err := m.SetContainers(fakeContainers(n, 0)); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := m.Apply(spec, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, hygiene := range []bool{true, false} {
			name := map[bool]string{true: "event", false: "event-elements"}[hygiene]
			b.Run(fmt.Sprintf("%s/containers=%d", name, n), func(b *testing.B) { benchEvent(b, n, hygiene) })
		}
	}
	b.Run("rate", benchContainerRate)
}

// benchEvent: one container event with n bound; without hygiene, the
// element transaction alone (no conntrack walk).
func benchEvent(b *testing.B, n int, hygiene bool) {
	ns := newNetns(b, false)
	m := ns.manager(b)
	m.keepFlows = !hygiene
	if err := m.Apply(containerSpec(), nil); err != nil {
		b.Fatal(err)
	}
	lists := [2][]nftspec.Container{fakeContainers(n, 0), append(fakeContainers(n-1, 0), fakeContainers(1, n)...)}
	if err := m.SetContainers(lists[0]); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i ^= 1
		if err := m.SetContainers(lists[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func benchContainerRate(b *testing.B) {
	tp := newCtrTopo(b, true)
	tp.spec.Tenants[1].AllowDirect = append(tp.spec.Tenants[1].AllowDirect,
		nftspec.Direct{Prefix: netip.MustParsePrefix("198.51.100.10/32"), Ports: []uint16{9}, Proto: "udp"})
	if err := tp.m.Apply(tp.spec, nil); err != nil {
		b.Fatal(err)
	}
	a := tp.container(b, "pa", 10)
	pps := map[int][]float64{}
	for b.Loop() {
		for _, n := range []int{1, 1000} {
			if err := tp.m.SetContainers(append(fakeContainers(n-1, 0), a.identity(2))); err != nil {
				b.Fatal(err)
			}
			count := tp.countFrom(b, a.ip4)
			var sent int
			a.ns.Do(b, func() { sent = blast(b, "198.51.100.10:9", time.Second) })
			time.Sleep(50 * time.Millisecond)
			got := count()[a.ip4]
			if got == 0 || got > sent {
				b.Fatalf("%d of %d datagrams arrived", got, sent)
			}
			pps[n] = append(pps[n], float64(got))
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	b.ReportMetric(mean(pps[1]), "pps/containers=1")
	b.ReportMetric(mean(pps[1000]), "pps/containers=1000")
	b.ReportMetric(mean(pps[1000])/mean(pps[1]), "ratio-1000/1")
}

// blast sends 64-byte UDP datagrams to addr for d from the calling
// thread's namespace and returns how many it sent.
func blast(b testing.TB, addr string, d time.Duration) int {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64-28) // 64 bytes with the IPv4 and UDP headers
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 64 {
			if _, err := c.Write(buf); err == nil {
				n++
			}
		}
	}
	return n
}

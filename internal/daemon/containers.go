package daemon

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/docker"
	"github.com/egressfw/egressfw/internal/nft/nftspec"
	"github.com/egressfw/egressfw/internal/proxy"
)

// Docker-label tenants. With docker.socket set, the firewall follows the
// engine (internal/docker) and binds every container it identifies to its
// bridge port (nft.SetContainers): a frame from the port must carry the
// container's MAC and addresses, and no other port may use them. A
// container whose labels match exactly one tenant's docker_labels carries
// that tenant's slot; any other identified container (no match, or two or
// more) carries slot 0 and keeps the tenant of the interface it arrives on.
//
// The bindings are computed from two things, the engine's last snapshot
// and the generation whose rules are in force, and both change under the
// firewall's lock: a snapshot is bound with the rules in force, a reload
// binds the last snapshot with its new tenants in the same transaction as
// its rules (nft.ApplyContainers). While the engine cannot be read the
// last snapshot stays bound (each endpoint dropped once its port is
// deleted), and containers started meanwhile are not identified: they get
// their interface tenant only, and an address an identified container
// holds is usable from no other port.

// firstLiveWait bounds how long the start waits for the engine's first
// live snapshot before it applies the rules without it.
const firstLiveWait = 2 * time.Second

// containerState is the firewall's Docker side, guarded by firewall.mu.
type containerState struct {
	snap *docker.Snapshot // the engine's last snapshot, nil before the first
	// gen is the generation the bindings in force were computed with (the
	// rules in force), nil before the first apply.
	gen *generation
	// warned holds the containers logged as matching several tenants, with
	// the tenants they matched then: each is logged once.
	warned map[string]string
	live   atomic.Bool
	// publish hands the bound addresses to the data path's log lines;
	// onLive reports the engine found or lost.
	publish func(map[netip.Addr]proxy.Container)
	onLive  func(bool)
}

// binding is what one snapshot binds under one generation.
type binding struct {
	cs     []nftspec.Container
	byAddr map[netip.Addr]proxy.Container // addresses bound to one port only
	// ambiguous are the containers two or more tenants' docker_labels
	// match (they get none of them), with those tenants.
	ambiguous map[string][]string
	names     map[string]string // container id -> name, for the log
	labelled  int               // containers bound with a tenant's slot
}

// bindingsOf binds every endpoint of snap that has a bridge port, an
// Ethernet MAC and an address, with the slot of the one labelled tenant of
// gen its container matches (0 for none or several). Two endpoints on one
// port (containers sharing a network namespace) are one binding, with the
// slot only if both have it.
func bindingsOf(snap *docker.Snapshot, gen *generation) binding {
	b := binding{byAddr: map[netip.Addr]proxy.Container{}, ambiguous: map[string][]string{}, names: map[string]string{}}
	if snap == nil {
		return b
	}
	var labelled []*config.Tenant
	for i := range gen.cfg.Tenants {
		if t := &gen.cfg.Tenants[i]; t.Labelled() {
			labelled = append(labelled, t)
		}
	}
	byPort := map[int]int{} // port -> index in b.cs
	owners := map[netip.Addr][]proxy.Container{}
	for _, id := range slices.Sorted(maps.Keys(snap.Containers)) {
		c := snap.Containers[id]
		b.names[id] = c.Name
		var matched []string
		for _, t := range labelled {
			if t.MatchesLabels(c.Labels) {
				matched = append(matched, t.Name)
			}
		}
		var slot uint32
		switch len(matched) {
		case 0:
		case 1:
			slot = gen.slots[matched[0]].ID
		default:
			b.ambiguous[id] = matched
		}
		ref := proxy.Container{Name: c.Name, ID: c.ShortID()}
		for _, ep := range c.Endpoints {
			addrs := bindable(ep)
			if ep.Port <= 0 || len(ep.MAC) != 6 || len(addrs) == 0 {
				continue
			}
			for _, a := range addrs {
				owners[a] = append(owners[a], ref)
			}
			if i, ok := byPort[ep.Port]; ok {
				if b.cs[i].Slot != slot {
					b.cs[i].Slot = 0
				}
				for _, a := range addrs {
					if !slices.Contains(b.cs[i].Addrs, a) {
						b.cs[i].Addrs = append(b.cs[i].Addrs, a)
					}
				}
				continue
			}
			byPort[ep.Port] = len(b.cs)
			b.cs = append(b.cs, nftspec.Container{Port: ep.Port, MAC: ep.MAC, Addrs: addrs, Slot: slot})
		}
	}
	for a, refs := range owners {
		if len(slices.Compact(refs)) == 1 {
			b.byAddr[a] = refs[0]
		}
	}
	for _, c := range b.cs {
		if c.Slot != 0 {
			b.labelled++
		}
	}
	slices.SortFunc(b.cs, func(x, y nftspec.Container) int { return cmp.Compare(x.Port, y.Port) })
	return b
}

// bindable returns the endpoint's addresses a port can own (the engine's
// IPv4 and global IPv6 address).
func bindable(ep docker.Endpoint) []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if a.IsValid() && !a.IsUnspecified() && !a.IsLinkLocalUnicast() && !a.IsMulticast() && a.Zone() == "" {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// checkLabelledSlots fails a config whose labelled tenants hold a slot the
// container mark cannot carry (a reload keeps slots, which can be higher
// than a fresh start's; config.Validate checks those).
func checkLabelledSlots(cfg *config.Config, slots map[string]config.Slot) error {
	if cfg.Docker.Socket == "" {
		return nil
	}
	max := config.MaxSlots(cfg.Firewall.ContainerMarkMask)
	for _, t := range cfg.Tenants {
		if s := slots[t.Name]; t.Labelled() && uint64(s.ID) > max {
			return fmt.Errorf("tenant %q holds slot %d, more than firewall.container_mark_mask %#x carries (%d): restart egressfw to renumber the slots, or widen the mask",
				t.Name, s.ID, cfg.Firewall.ContainerMarkMask, max)
		}
	}
	return nil
}

// followDocker starts following the engine of cfg and waits up to
// firstLiveWait for its first live snapshot with every listed container
// read, so that the first apply binds the running containers (a restart
// that bound only some would take the others' tenant away until they are
// read). publish and onLive: see containerState.
func (f *firewall) followDocker(ctx context.Context, cfg config.Docker, publish func(map[netip.Addr]proxy.Container), onLive func(bool)) error {
	ports, err := docker.NewHostPorts(-1)
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	fl, err := docker.New(docker.Config{Socket: cfg.Socket, Ports: ports, Reconcile: cfg.Reconcile.Duration, Log: f.log})
	if err != nil {
		ports.Close()
		return err
	}
	f.mu.Lock()
	f.ctr.publish, f.ctr.onLive = publish, onLive
	f.mu.Unlock()
	f.metrics.followDocker()
	first := make(chan struct{})
	var once sync.Once
	go func() {
		defer ports.Close()
		_ = fl.Run(ctx, func(s docker.Snapshot) {
			f.containersChanged(s)
			if s.Live && s.Pending == 0 {
				once.Do(func() { close(first) })
			}
		})
	}()
	select {
	case <-first:
	case <-time.After(firstLiveWait):
		f.log.Warn("docker: no answer from the engine API yet; starting without container identities (containers get their interface tenant until it answers)",
			"socket", cfg.Socket, "waited", firstLiveWait.String())
	case <-ctx.Done():
	}
	return nil
}

// containersChanged records the engine's snapshot and, once rules are in
// force, binds it.
func (f *firewall) containersChanged(s docker.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctr.snap = &s
	if f.ctr.live.Swap(s.Live) != s.Live {
		f.metrics.dockerUp.Set(map[bool]float64{true: 1}[s.Live])
		if f.ctr.onLive != nil {
			f.ctr.onLive(s.Live)
		}
	}
	if f.ctr.gen == nil {
		return
	}
	b := bindingsOf(&s, f.ctr.gen)
	t0 := time.Now()
	if err := f.mgr.SetContainers(b.cs); err != nil {
		f.metrics.containerSync.WithLabelValues("error").Inc()
		f.log.Error("docker: bind containers to their bridge ports", "containers", len(s.Containers), "err", err)
		return
	}
	f.metrics.containerSync.WithLabelValues("ok").Inc()
	f.bound(b, f.ctr.gen)
	f.log.Debug("docker: containers bound", "ports", len(b.cs), "labelled", b.labelled, "live", s.Live,
		"took_us", time.Since(t0).Microseconds())
}

// bindLocked returns the bindings of the last snapshot under gen.
func (f *firewall) bindLocked(gen *generation) binding {
	return bindingsOf(f.ctr.snap, gen)
}

// bound records that b, computed under gen, is in force: the data path
// names its containers, and each container that matches several tenants is
// logged once.
func (f *firewall) bound(b binding, gen *generation) {
	f.ctr.gen = gen
	if f.ctr.publish != nil {
		f.ctr.publish(b.byAddr)
	}
	for id, tenants := range b.ambiguous {
		key := strings.Join(tenants, ",")
		if f.ctr.warned[id] == key {
			continue
		}
		if f.ctr.warned == nil {
			f.ctr.warned = map[string]string{}
		}
		f.ctr.warned[id] = key
		f.log.Warn("docker: container matches the docker_labels of several tenants; it gets none of them (only the tenant of its interface)",
			"container", b.names[id], "container_id", (&docker.Container{ID: id}).ShortID(), "tenants", tenants)
	}
	for id := range f.ctr.warned {
		if _, ok := b.ambiguous[id]; !ok {
			delete(f.ctr.warned, id)
		}
	}
}

// dockerLive reports whether the engine's API is being followed (false
// also without docker.socket).
func (f *firewall) dockerLive() bool { return f.ctr.live.Load() }

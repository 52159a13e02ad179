package nft

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/egressfw/egressfw/internal/nft/route"

	"github.com/egressfw/egressfw/internal/nft/rules"

	"github.com/egressfw/egressfw/internal/nft/nftspec"

	"github.com/egressfw/egressfw/internal/nft/batch"
	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Manager installs, updates and removes egressfw's table and policy
// routing in one network namespace. Its methods are safe for concurrent use.
type Manager struct {
	mu      sync.Mutex
	conn    *nftables.Conn // reads the installed table
	b       *batch.Batcher // queues and commits changes (package batch)
	nl      *netlink.Handle
	spec    *nftspec.Spec     // last applied, nil before the first Apply
	ids     nftspec.CgroupIDs // cgroup ids in the maps, keyed by cleaned path
	routing *route.Routing    // policy routing installed by this Manager
	// texts holds the rules this Manager last programmed into each regular
	// chain of the table, nil when unknown (see keep.go). vouched: a
	// restore removed from texts every chain another program changed, as
	// the watch saw them, so the next replace trusts it although the
	// generation moved (see watch.go).
	texts   chainTexts
	vouched bool

	// Change notifications (see watch.go): nftables and rtnetlink sockets,
	// opened in the namespace by New and joined to their groups by Watch.
	mon, rtmon *mdnetlink.Conn
	watching   bool
	watched    atomic.Pointer[watched] // what the last Apply installed; nil after Cleanup
	closed     atomic.Bool
	spare      *spareBatch // builds the applied table from nothing (spare.go)

	// containers are the identities the bridge table binds (package
	// rules, containers.go); keepFlows (tests only) skips the conntrack
	// hygiene of SetContainers.
	containers []nftspec.Container
	keepFlows  bool
}

// Option configures New.
type Option func(*options)

type options struct{ netnsFd int }

// WithNetNS makes the Manager program the network namespace open at fd
// (e.g. /run/netns/NAME) instead of the caller's. The fd is only used during
// New and may be closed afterwards.
func WithNetNS(fd int) Option { return func(o *options) { o.netnsFd = fd } }

// New opens the netlink sockets the Manager programs through.
func New(opts ...Option) (*Manager, error) {
	o := options{netnsFd: -1}
	for _, f := range opts {
		f(&o)
	}
	connOpts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(batch.BigBuffers)}
	var nl *netlink.Handle
	var err error
	if o.netnsFd >= 0 {
		connOpts = append(connOpts, nftables.WithNetNSFd(o.netnsFd))
		nl, err = netlink.NewHandleAt(netns.NsHandle(o.netnsFd))
	} else {
		nl, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	conn, err := nftables.New(connOpts...)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("open nftables netlink: %w", err)
	}
	m := &Manager{conn: conn, nl: nl}
	if m.b, err = batch.New(o.netnsFd); err == nil {
		m.mon, m.rtmon, err = dialMonitors(o.netnsFd)
	}
	if err != nil {
		m.closeSockets()
		_ = conn.CloseLasting()
		return nil, err
	}
	return m, nil
}

// routingOf is the policy routing spec needs.
func routingOf(s *nftspec.Spec) route.Routing {
	return route.Routing{Mark: s.InterceptMark, Mask: s.MarkMask, Table: s.RouteTable, Priority: s.RulePriority}
}

// Close releases the netlink sockets. It does not touch the installed
// rules: they stay (fail closed) until Cleanup.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeSockets()
	if err := m.conn.CloseLasting(); err != nil {
		return fmt.Errorf("close nftables netlink: %w", err)
	}
	return nil
}

// Apply installs spec with the given cgroup ids, replacing the previous
// contents of the table in one netlink batch (one kernel transaction) that
// keeps the table, its base chains and every chain and set that stays, so a
// replacement never interrupts traffic that both rulesets handle alike (see
// the package doc, Atomicity). The chains of new tenants are added in a
// batch just before, unreferenced until the replacement. Chains whose rules
// the previous Apply programmed and spec does not change are left alone,
// so a rule edited by hand in such a chain stays until its tenant changes
// or a new Manager applies (see keep.go). The policy routing is made to
// match spec before the table is replaced.
func (m *Manager) Apply(spec nftspec.Spec, ids nftspec.CgroupIDs) error {
	return m.ApplyWhen(spec, ids, nil)
}

// ApplyWhen is Apply that calls ready, if not nil, once the chains of new
// tenants are in place and before any rule or map element points to them,
// and goes on only if it returns nil: the caller can open what the new
// rules send traffic to (listening sockets) while the rules are being
// prepared, without any packet reaching the new rules before that. An error
// from ready is returned as is and leaves the previous ruleset in force.
func (m *Manager) ApplyWhen(spec nftspec.Spec, ids nftspec.CgroupIDs, ready func() error) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("apply ruleset: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(&spec, ids, ready)
}

func (m *Manager) applyLocked(spec *nftspec.Spec, ids nftspec.CgroupIDs, ready func() error) error {
	r := routingOf(spec)
	if m.routing != nil && *m.routing != r {
		if err := route.Remove(m.nl, *m.routing); err != nil {
			return fmt.Errorf("apply ruleset: %w", err)
		}
	}
	if err := route.Install(m.nl, r); err != nil {
		return fmt.Errorf("apply ruleset: %w", err)
	}
	m.routing = &r
	if m.spec != nil && m.spec.Table != spec.Table {
		m.deleteTable(m.spec.Table)
		m.texts = nil
	}
	var br *rules.Ruleset // the bridge table, nil for none
	if spec.Containers {
		br = rules.BuildBridge(spec, m.containers)
	}
	if err := m.replace(rules.Build(spec, ids), br, spec.Table, ready); err != nil {
		if errors.Is(err, errNotReady) {
			return errors.Unwrap(err)
		}
		return fmt.Errorf("apply ruleset: %w", err)
	}
	m.spec = spec
	m.ids = knownIDs(spec, ids)
	if !spec.Containers {
		m.containers = nil
	}
	m.watched.Store(&watched{table: spec.Table, routeTable: uint32(spec.RouteTable), bridge: spec.Containers})
	m.prepareSpare(spec)
	return nil
}

// replace turns the installed table into rs, and the bridge table of the
// same name into br (none if nil), in one batch, after a batch that adds
// the chains of new tenants (see precreate). Chains that already hold the
// rules rs wants are kept as they are (see keep.go).
func (m *Manager) replace(rs, br *rules.Ruleset, table string, ready func() error) error {
	last, vouched := m.texts, m.vouched
	m.texts, m.vouched = nil, false // unknown until the batch is committed
	if !vouched && !m.b.Unchanged() {
		// Another transaction since ours (a restore with nft -f, a
		// flushed chain, any other owner's change): rewrite every chain.
		last = nil
	}
	in, err := readInstalled(m.conn, nftables.TableFamilyINet, table)
	if err != nil {
		return err
	}
	want := texts(rs)
	keep := unchanged(rs, in, last, want)
	made, err := precreate(rs, m.b.Queue(), table, in)
	if err != nil {
		return err
	}
	if len(made) > 0 {
		if err := m.b.Commit(); err != nil {
			// Another program may have deleted the table since it was
			// read (systemctl reload nftables during a reload): then build
			// it from nothing instead of failing the Apply.
			if now, err2 := readInstalled(m.conn, nftables.TableFamilyINet, table); err2 != nil || now.exists {
				return fmt.Errorf("add new chains to table inet %s: %w", table, err)
			}
			in, keep, made = &installed{}, map[string]bool{}, nil
		}
	}
	if ready != nil {
		if err := ready(); err != nil {
			return &notReady{err}
		}
	}
	maps.Copy(keep, made)
	if err := program(rs, m.b.Queue(), table, in, keep); err != nil {
		return err
	}
	if err := m.queueBridge(br, table, false); err != nil {
		return err
	}
	err = m.b.CommitFresh()
	if err == nil {
		m.texts = want
		return nil
	}
	if !in.exists {
		return fmt.Errorf("replace table inet %s: %w", table, err)
	}
	// The installed table cannot be updated in place (another version made
	// it, or it was changed behind our back): rebuild it in one batch. The
	// transaction is still atomic, but packets in flight during the commit
	// may be reset or pass unmarked (see the package doc, Atomicity). The
	// next Apply rewrites every chain again (m.texts stays nil).
	m.deleteTable(table)
	err2 := program(rs, m.b.Queue(), table, &installed{}, nil)
	if err2 == nil {
		err2 = m.queueBridge(br, table, true)
	}
	if err2 != nil {
		return fmt.Errorf("replace table inet %s: %w (rebuild: %w)", table, err, err2)
	}
	if err2 := m.b.Commit(); err2 != nil {
		return fmt.Errorf("replace table inet %s: %w (rebuild: %w)", table, err, err2)
	}
	return nil
}

// errNotReady marks the error of an ApplyWhen's ready function.
var errNotReady = errors.New("not ready")

type notReady struct{ err error }

func (e *notReady) Error() string   { return e.err.Error() }
func (e *notReady) Unwrap() error   { return e.err }
func (e *notReady) Is(t error) bool { return t == errNotReady }

// knownIDs keeps the ids of configured paths only, keyed by cleaned path.
func knownIDs(spec *nftspec.Spec, ids nftspec.CgroupIDs) nftspec.CgroupIDs {
	out := nftspec.CgroupIDs{}
	for _, c := range spec.CgroupPaths() {
		if id, ok := ids[c]; ok {
			out[c] = id
		}
	}
	return out
}

// SetCgroupIDs brings the cgroup maps of the applied table in line with
// ids (a complete snapshot: paths missing from it are dropped). Only map
// elements change, in one batch; if that batch fails (the table was changed
// behind our back) the whole table is re-applied.
func (m *Manager) SetCgroupIDs(ids nftspec.CgroupIDs) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.spec == nil {
		return errors.New("set cgroup ids: no ruleset applied")
	}
	want := knownIDs(m.spec, ids)
	if maps.Equal(want, m.ids) {
		return nil
	}
	table := &nftables.Table{Name: m.spec.Table, Family: nftables.TableFamilyINet}
	oldElems, newElems := rules.CgroupElems(m.spec, m.ids), rules.CgroupElems(m.spec, want)
	for _, l := range m.spec.Levels() {
		set := &nftables.Set{Table: table, Name: rules.CgroupMapName(l), IsMap: true}
		del, add := diffElems(oldElems[l], newElems[l])
		if err := eachChunk(del, func(c []nftables.SetElement) error { return m.b.Queue().SetDeleteElements(set, c) }); err != nil {
			return fmt.Errorf("set cgroup ids: %w", err)
		}
		if err := eachChunk(add, func(c []nftables.SetElement) error { return m.b.Queue().SetAddElements(set, c) }); err != nil {
			return fmt.Errorf("set cgroup ids: %w", err)
		}
	}
	if err := m.b.Commit(); err != nil {
		m.texts = nil // the table was changed behind our back: rewrite it all
		if err2 := m.applyLocked(m.spec, want, nil); err2 != nil {
			return fmt.Errorf("set cgroup ids: %w (re-apply: %w)", err, err2)
		}
		return nil
	}
	m.ids = want
	return nil
}

// maxChunkBytes bounds the encoded size of the elements sent in one
// message. The element list is one netlink attribute, whose length field is
// 16 bits: google/nftables does not split, and a longer list wraps the
// length and the kernel silently takes only a prefix of the elements.
const maxChunkBytes = 32 << 10

// eachChunk calls f with consecutive runs of elems small enough for one
// message.
func eachChunk(elems []nftables.SetElement, f func([]nftables.SetElement) error) error {
	start, size := 0, 0
	for i, e := range elems {
		n := 64 + len(e.Key) + len(e.Val) + len(e.Comment) // attribute headers and padding included
		if e.VerdictData != nil {
			n += len(e.VerdictData.Chain)
		}
		if size+n > maxChunkBytes && i > start {
			if err := f(elems[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	if start < len(elems) {
		return f(elems[start:])
	}
	return nil
}

// diffElems returns the elements to delete from and add to old to get new.
// An element whose key stays but whose verdict changes is replaced.
func diffElems(old, new []rules.Element) (del, add []nftables.SetElement) {
	have := map[string]string{}
	for _, e := range old {
		have[string(e.Elem.Key)] = e.Text
	}
	want := map[string]bool{}
	for _, e := range new {
		k := string(e.Elem.Key)
		want[k] = true
		if t, ok := have[k]; ok && t == e.Text {
			continue
		}
		if _, ok := have[k]; ok {
			del = append(del, nftables.SetElement{Key: e.Elem.Key})
		}
		add = append(add, e.Elem)
	}
	for _, e := range old {
		if !want[string(e.Elem.Key)] {
			del = append(del, nftables.SetElement{Key: e.Elem.Key})
		}
	}
	return del, add
}

// Cleanup removes everything spec's ruleset installs: the table, the fwmark
// rules and the routes in the route table (and whatever this Manager
// installed under other parameters). It succeeds when nothing is installed.
// A normal stop does not call it: the rules stay so traffic fails closed.
func (m *Manager) Cleanup(spec nftspec.Spec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.texts = nil
	var errs []error
	tables := []string{spec.Table}
	if m.spec != nil && m.spec.Table != spec.Table {
		tables = append(tables, m.spec.Table)
	}
	for _, t := range tables {
		m.deleteTable(t)
		if err := m.b.Commit(); err != nil {
			errs = append(errs, fmt.Errorf("cleanup: delete table inet %s: %w", t, err))
		}
	}
	routings := []route.Routing{routingOf(&spec)}
	if m.routing != nil && *m.routing != routings[0] {
		routings = append(routings, *m.routing)
	}
	for _, r := range routings {
		if err := route.Remove(m.nl, r); err != nil {
			errs = append(errs, fmt.Errorf("cleanup: %w", err))
		}
	}
	if len(errs) == 0 {
		m.spec, m.ids, m.routing, m.spare, m.containers = nil, nil, nil, nil, nil
		m.watched.Store(nil)
	}
	return errors.Join(errs...)
}

// deleteTable queues "delete table if it exists" for the inet table and
// the bridge table of that name: adding an existing table is a no-op, so
// add-then-delete never fails on a missing table.
func (m *Manager) deleteTable(name string) {
	for _, f := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyBridge} {
		t := &nftables.Table{Name: name, Family: f}
		m.b.Queue().AddTable(t)
		m.b.Queue().DelTable(t)
	}
}

package suggest

import (
	"net/netip"
	"time"
)

// Reasons (policy codes in the log) that suggest treats specially.
const (
	reasonNotAllowed   = "not_allowed_domain"
	reasonInternal     = "internal_address"
	reasonInternalPort = "internal_port"
)

// MaxKeysPerTenant bounds what is tracked per tenant (distinct names,
// destinations and refusals): a tenant that connects to a million random
// names costs bounded memory; the excess is counted in Tenant.Untracked.
const MaxKeysPerTenant = 100000

// Use counts the connections of one key.
type Use struct {
	Count  int
	Failed int // of those, connections whose upstream could not be reached (decision error)
	Last   time.Time
	// Resolved is what the name last resolved to, as logged.
	Resolved []netip.Addr
}

func (u *Use) add(r Record) {
	u.Count++
	if r.Decision == DecisionError {
		u.Failed++
	}
	if r.Time.After(u.Last) {
		u.Last = r.Time
	}
	if len(r.Resolved) > 0 {
		u.Resolved = r.Resolved
	}
}

func (u *Use) merge(o *Use) {
	u.Count += o.Count
	u.Failed += o.Failed
	if o.Last.After(u.Last) {
		u.Last = o.Last
	}
	if len(u.Resolved) == 0 {
		u.Resolved = o.Resolved
	}
}

// Dest is a destination: a name or an IP literal, on a port.
type Dest struct {
	Name string     // normalised, or ""
	Addr netip.Addr // an IP literal, or invalid
	Port uint16
	// Bad: the logged name did not normalise (it is not shown).
	Bad bool
	// NoSNI: a TLS ClientHello without a server name, judged (and shown)
	// by its destination address.
	NoSNI bool
}

// Refusal is a destination refused (or that would have been) for a reason.
type Refusal struct {
	Dest
	Reason string
}

// Tenant is what the log says about one tenant.
type Tenant struct {
	Name        string
	Conns       int
	First, Last time.Time
	Modes       map[string]int // connections per logged mode
	// Names are the names the tenant reached (or, in report mode, would
	// have reached with the name on the allow list): the allow_domains
	// candidates.
	Names map[string]*Use
	// Internal are the internal destinations report mode let through
	// (internal_address, internal_port): allow_internal candidates.
	Internal map[Dest]*Use
	// InternalReason is the reason logged for each Internal key (last seen).
	InternalReason map[Dest]string
	// Literals are IP-literal destinations, whatever the decision.
	Literals map[Refusal]*Use
	// Refused are report-mode refusals that are not candidates (no such
	// name, deny list, malformed requests, ...).
	Refused map[Refusal]*Use
	// Denied are enforce-mode denials.
	Denied map[Refusal]*Use
	// Reached are the addresses allowed connections dialed (or were
	// headed to), to tell which allow_internal CIDRs were used.
	Reached map[netip.AddrPort]*Use
	// Untracked counts connections whose key was not tracked because the
	// tenant already had MaxKeysPerTenant.
	Untracked int
	keys      int
}

// Log is the aggregate of the connection lines read, per tenant.
type Log struct {
	Tenants map[string]*Tenant
}

// NewLog returns an empty aggregate.
func NewLog() *Log { return &Log{Tenants: map[string]*Tenant{}} }

// Add counts one connection record.
func (l *Log) Add(r Record) {
	t := l.Tenants[r.Tenant]
	if t == nil {
		t = &Tenant{Name: r.Tenant, Modes: map[string]int{}, Names: map[string]*Use{},
			Internal: map[Dest]*Use{}, InternalReason: map[Dest]string{}, Literals: map[Refusal]*Use{},
			Refused: map[Refusal]*Use{}, Denied: map[Refusal]*Use{}, Reached: map[netip.AddrPort]*Use{}}
		l.Tenants[r.Tenant] = t
	}
	t.add(r)
}

func (t *Tenant) add(r Record) {
	t.Conns++
	if r.Mode != "" {
		t.Modes[r.Mode]++
	}
	if !r.Time.IsZero() {
		if t.First.IsZero() || r.Time.Before(t.First) {
			t.First = r.Time
		}
		if r.Time.After(t.Last) {
			t.Last = r.Time
		}
	}
	d := Dest{Name: r.Name, Addr: r.Literal, Port: r.OrigDst.Port(), Bad: r.BadName, NoSNI: r.NoSNI}
	allowed := r.Decision == DecisionAllow || r.Decision == DecisionError
	if allowed {
		t.reached(r)
	}
	switch {
	case r.Decision == DecisionDeny:
		count(t, t.Denied, Refusal{d, r.Reason}, r)
	case r.Literal.IsValid():
		count(t, t.Literals, Refusal{d, r.Reason}, r)
	case r.Name == "":
		count(t, t.Refused, Refusal{d, r.Reason}, r) // no or a bad name: nothing to list
	case allowed, r.Reason == reasonNotAllowed:
		count(t, t.Names, r.Name, r)
	case r.Reason == reasonInternal || r.Reason == reasonInternalPort:
		count(t, t.Internal, d, r)
		t.InternalReason[d] = r.Reason
	default:
		count(t, t.Refused, Refusal{d, r.Reason}, r)
	}
}

// reached counts the address an allowed connection dialed (or was headed
// to), within the tenant's bound.
func (t *Tenant) reached(r Record) {
	ap := r.Dialed
	if !ap.IsValid() {
		ap = r.OrigDst
	}
	if !ap.IsValid() {
		return
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	u := t.Reached[ap]
	if u == nil {
		if !t.room() {
			return // counted once, as the connection's own key
		}
		u = &Use{}
		t.Reached[ap] = u
	}
	u.add(r)
}

// count adds r to m[k], unless k is new and the tenant is at its bound.
func count[K comparable](t *Tenant, m map[K]*Use, k K, r Record) {
	u := m[k]
	if u == nil {
		if !t.room() {
			t.Untracked++
			return
		}
		u = &Use{}
		m[k] = u
	}
	u.add(r)
}

// room charges a new key against the tenant's bound; false when at it.
func (t *Tenant) room() bool {
	if t.keys >= MaxKeysPerTenant {
		return false
	}
	t.keys++
	return true
}

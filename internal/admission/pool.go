package admission

import "sync"

// Pool is a cap the tenants share (limits.max_connections, or
// limits.max_peeking for connections still being peeked), with a share per
// tenant. Over a cap a connection is refused at once instead of queueing.
//
// Half of the cap is reserved, split evenly among the configured tenants:
// each tenant can always hold its reserve (cap / (2 × tenants), at least
// one slot, at most its own cap), however busy the others are. Beyond its
// reserve a tenant borrows, up to its own cap, only slots that leave every
// other tenant's unused reserve free. So no set of busy tenants can take
// every slot: the share that is safe from them shrinks with the tenant
// count, while a tenant alone can still use about half the cap and more.
// With more tenants than half the cap, one slot each would leave nothing to
// borrow, so the cap grows to two slots per tenant (effectiveCap): the
// guarantee holds for every tenant count the slots allow (4,095).
type Pool struct {
	mu  sync.Mutex
	max int
	cur int
	// unused is the reserved slots not in use: the sum over shares of
	// max(0, reserve - cur). Borrowing never takes them.
	unused int
	shares map[string]*Share
}

// Share is one tenant's part of a Pool. Shares outlive snapshots (by tenant
// name), so their counts hold across reloads.
type Share struct {
	max, reserve, cur int
}

// Why Enter refused: the tenant's own cap, or the pool's (which includes
// the slots reserved for the other tenants).
const (
	OverTenant = "tenant"
	OverPool   = "pool"
)

// NewPool returns a pool with no tenants, to Configure.
func NewPool() *Pool { return &Pool{max: 1, shares: map[string]*Share{}} }

// Configure sets the pool's cap (limit, or effectiveCap of it) and each
// tenant's cap (by name) and returns the tenants' shares. A tenant no longer named keeps its share
// for its live connections, with no reserve. Connections above a lowered
// cap finish; new ones wait for the counts to fall below it.
func (p *Pool) Configure(limit int, caps map[string]int) map[string]*Share {
	p.mu.Lock()
	defer p.mu.Unlock()
	reserve := 0
	if len(caps) > 0 {
		reserve = max(1, limit/(2*len(caps)))
	}
	shares := make(map[string]*Share, len(caps))
	p.max, p.unused = effectiveCap(limit, len(caps)), 0
	for name, c := range caps {
		sh := p.shares[name]
		if sh == nil {
			sh = &Share{}
		}
		sh.max, sh.reserve = c, min(reserve, c)
		p.unused += sh.reserve - min(sh.cur, sh.reserve)
		shares[name] = sh
	}
	for name, sh := range p.shares {
		if shares[name] == nil {
			sh.reserve = 0
		}
	}
	p.shares = shares
	return shares
}

// effectiveCap is the cap a pool of limit slots has with n tenants: limit,
// or two slots per tenant when that is more (a reserved one and one to
// borrow).
func effectiveCap(limit, n int) int { return max(limit, 2*n) }

// Enter takes a slot for sh if one is free; else it says which cap is full
// (OverTenant or OverPool).
func (p *Pool) Enter(sh *Share) (over string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case sh.cur >= sh.max:
		return OverTenant
	case p.cur >= p.max:
		return OverPool
	case sh.cur < sh.reserve:
		p.unused--
	case p.cur+1+p.unused > p.max:
		return OverPool // the free slots are other tenants' reserve
	}
	sh.cur++
	p.cur++
	return ""
}

// Leave gives back a slot sh took.
func (p *Pool) Leave(sh *Share) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sh.cur--
	p.cur--
	if sh.cur < sh.reserve {
		p.unused++
	}
}

// Count is how many of the pool's slots sh holds now (0 for a nil share).
func (p *Pool) Count(sh *Share) int {
	if sh == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return sh.cur
}

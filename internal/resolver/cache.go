package resolver

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// answer is one resolution outcome, shared read-only between the cache and
// every caller coalesced onto it. Callers get copies of addrs.
type answer struct {
	addrs     []netip.Addr
	ttl       time.Duration // clamped TTL when stored
	server    string
	canonical string
	partial   error        // non-nil when one family failed
	err       *LookupError // non-nil for a negative or failed answer
	expires   time.Time
}

// cache is a bounded LRU map from name to answer that drops expired
// entries when it meets them.
type cache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front = most recently used; values are *cacheItem
	m   map[string]*list.Element
}

type cacheItem struct {
	key string
	a   *answer
}

func newCache(max int) *cache {
	return &cache{max: max, ll: list.New(), m: make(map[string]*list.Element)}
}

// get returns the live answer for key, or false if absent or expired.
func (c *cache) get(key string, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	it := el.Value.(*cacheItem)
	if !now.Before(it.a.expires) {
		c.ll.Remove(el)
		delete(c.m, key)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return it.a, true
}

// put stores a under key, evicting the least recently used entry when full.
func (c *cache) put(key string, a *answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		el.Value.(*cacheItem).a = a
		c.ll.MoveToFront(el)
		return
	}
	for c.ll.Len() >= c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.m, oldest.Value.(*cacheItem).key)
	}
	c.m[key] = c.ll.PushFront(&cacheItem{key: key, a: a})
}

// len reports the number of entries, live or not yet noticed as expired.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

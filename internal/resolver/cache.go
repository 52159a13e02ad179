package resolver

import (
	"container/list"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// answer is one resolution outcome, shared read-only between the cache and
// every caller coalesced onto it. Callers get copies of addrs.
type answer struct {
	addrs     []netip.Addr
	dropped   int           // addresses the server gave beyond Config.MaxAddrs
	ttl       time.Duration // clamped TTL when stored
	server    string
	canonical string
	aliases   []string     // the CNAME targets followed, in order
	chains    [2][]string  // the same per family (IPv4, IPv6), shared with Results
	rrs       []dns.RR     // a Query answer's records of its type (not A or AAAA)
	partial   error        // non-nil when one family failed
	err       *LookupError // non-nil for a negative or failed answer
	expires   time.Time
}

// entryOverhead approximates what a cache entry costs beyond its strings
// and addresses: the list element, the map slot, the item and the answer.
const entryOverhead = 256

// rrOverhead approximates what a cached record costs beyond its wire
// length: the interface value and the struct with its header.
const rrOverhead = 96

// size estimates the bytes key and a hold in the cache.
func (a *answer) size(key string) int {
	n := entryOverhead + 2*len(key) + len(a.server) + len(a.canonical) + len(a.addrs)*int(unsafe.Sizeof(netip.Addr{}))
	for _, chain := range append([][]string{a.aliases}, a.chains[:]...) {
		for _, s := range chain {
			n += len(s) + int(unsafe.Sizeof(s))
		}
	}
	for _, rr := range a.rrs {
		n += rrOverhead + dns.Len(rr)
	}
	return n
}

// cache is an LRU map from name to answer, bounded by entries and by
// bytes, that drops expired entries when it meets them.
type cache struct {
	mu       sync.Mutex
	max      int
	maxBytes int
	bytes    int
	ll       *list.List // front = most recently used; values are *cacheItem
	m        map[string]*list.Element
}

type cacheItem struct {
	key  string
	a    *answer
	size int
}

func newCache(max, maxBytes int) *cache {
	return &cache{max: max, maxBytes: maxBytes, ll: list.New(), m: make(map[string]*list.Element)}
}

// remove drops el; the caller holds mu.
func (c *cache) remove(el *list.Element) {
	it := el.Value.(*cacheItem)
	c.ll.Remove(el)
	delete(c.m, it.key)
	c.bytes -= it.size
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
		c.remove(el)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return it.a, true
}

// put stores a under key, evicting the least recently used entries while
// the cache holds more than max entries or maxBytes bytes.
func (c *cache) put(key string, a *answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.remove(el)
	}
	it := &cacheItem{key: key, a: a, size: a.size(key)}
	c.m[key] = c.ll.PushFront(it)
	c.bytes += it.size
	for c.ll.Len() > c.max || c.bytes > c.maxBytes && c.ll.Len() > 1 {
		c.remove(c.ll.Back())
	}
}

// len reports the number of entries, live or not yet noticed as expired.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// size reports the estimated bytes the entries hold.
func (c *cache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// CacheStats counts a resolver's lookups (Lookup, and Query for the types
// Lookup does not answer): Hits were answered from the cache, Misses were
// not (they were asked upstream, or waited for the same question already
// asked). A lookup abandoned before it got an answer counts in neither.
type CacheStats struct {
	Hits, Misses atomic.Uint64
}

// count adds one lookup; s may be nil.
func (s *CacheStats) count(hit bool) {
	switch {
	case s == nil:
	case hit:
		s.Hits.Add(1)
	default:
		s.Misses.Add(1)
	}
}

package status

import "time"

// Report is the daemon's answer on the status socket, one JSON object.
type Report struct {
	// Error, when set, is why the daemon did not answer (the peer is not
	// root); nothing else is set then.
	Error   string    `json:"error,omitempty"`
	Version string    `json:"version"`
	Config  string    `json:"config"`
	Started time.Time `json:"started"`
	Now     time.Time `json:"now"`
	// Health is "ok" or why the watchdog's pings stop (see daemon.health).
	Health   string   `json:"health"`
	Tenants  []Tenant `json:"tenants"`
	Ruleset  Ruleset  `json:"ruleset"`
	Reload   Reload   `json:"reload"`
	DNSCache Cache    `json:"dns_cache"`
}

// Tenant is one tenant of the running config.
type Tenant struct {
	Name string `json:"name"`
	Mode string `json:"mode"` // enforce | report
	Slot uint32 `json:"slot"`
	Port uint16 `json:"port"` // its listener port
	// Open counts the tenant's connections held now, from accept to close.
	Open int `json:"open"`
	// LastMinute counts the connections decided in the last 60 seconds.
	LastMinute Counts `json:"last_minute"`
	// TopDenied are the names most often denied (or, in report mode,
	// that would have been) since TopSince, most first.
	TopDenied []Name    `json:"top_denied"`
	TopSince  time.Time `json:"top_since"`
}

// Counts are a tenant's connections by outcome (policy.Decision.Outcome).
type Counts struct {
	// Connections are all that were decided: allowed, denied, reported or
	// failed upstream.
	Connections uint64 `json:"connections"`
	Denied      uint64 `json:"denied"`
	// Reported were let through in report mode that enforce would deny.
	Reported uint64 `json:"reported"`
	// Failed were allowed but the upstream could not be reached.
	Failed uint64 `json:"failed"`
}

// Name is one denied destination of a tenant: the name it asked for, or the
// address when it named none.
type Name struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
	// Overcount is how much of Count may belong to names evicted before
	// this one came back (Space-Saving); 0 means Count is exact.
	Overcount uint64    `json:"overcount,omitempty"`
	Decision  string    `json:"decision"` // of the last one: deny | would_deny
	Reason    string    `json:"reason"`   // of the last one
	Last      time.Time `json:"last"`
}

// Ruleset is the kernel side: the last application of the rules and the
// watch that restores them after other programs' changes.
type Ruleset struct {
	// Problem is why the ruleset or its watch is unhealthy, "" if it is not.
	Problem   string `json:"problem,omitempty"`
	LastApply *Event `json:"last_apply,omitempty"`
	// Restores counts the successful restores since start; Failures the
	// attempts the kernel refused (each is retried).
	Restores    uint64 `json:"restores"`
	Failures    uint64 `json:"restore_failures"`
	LastRestore *Event `json:"last_restore,omitempty"`
}

// Event is one thing that happened at a time, and how it ended.
type Event struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"` // "" when it succeeded
	// By and What: for a restore, the process that made the change and
	// the change.
	By   string `json:"by,omitempty"`
	What string `json:"what,omitempty"`
}

// Reload is the last config reload (SIGHUP).
type Reload struct {
	Count int64  `json:"count"` // reloads since start
	Last  *Event `json:"last,omitempty"`
}

// Cache is the resolver cache's use since start: lookups answered from it
// and the others.
type Cache struct {
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
}

// HitRatio is Hits over all lookups, 0 without lookups.
func (c Cache) HitRatio() float64 {
	if c.Hits+c.Misses == 0 {
		return 0
	}
	return float64(c.Hits) / float64(c.Hits+c.Misses)
}

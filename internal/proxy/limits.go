package proxy

// configureLimits gives snap's tenants their shares of the connection and
// peek caps and their pacers, carrying the counts over from the running
// config.
func (s *Proxy) configureLimits(snap *Snapshot) {
	cfg := snap.cfg
	caps, peekCaps := map[string]int{}, map[string]int{}
	for _, t := range cfg.Tenants {
		caps[t.Name] = t.MaxConnections
		if caps[t.Name] == 0 {
			caps[t.Name] = cfg.Limits.MaxConnectionsPerTenant
		}
		peekCaps[t.Name] = cfg.Limits.MaxPeekingPerTenant
	}
	shares := s.connPool.Configure(cfg.Limits.MaxConnections, caps)
	peekShares := s.peekPool.Configure(cfg.Limits.MaxPeeking, peekCaps)
	pacers := s.configurePacers(cfg)
	for _, t := range snap.tenants {
		t.share, t.peekShare, t.pacer = shares[t.name], peekShares[t.name], pacers[t.name]
	}
}

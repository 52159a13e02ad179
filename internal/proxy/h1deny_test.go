package proxy

import (
	"io"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
	"github.com/egressfw/egressfw/internal/refuse"
)

// TestFollowUpRefusalAnswersAsFirst: a refused later request gets, after
// the response before it, exactly the bytes a refused first request gets
// (the same 403 page) under deny_detail "minimal" and "full" alike, and
// the connection ends there.
func TestFollowUpRefusalAnswersAsFirst(t *testing.T) {
	h, _, _ := h1Harness(t)
	for _, mode := range []string{config.DenyDetailMinimal, config.DenyDetailFull} {
		t.Run(mode, func(t *testing.T) {
			cfg := *h.srv.state.Load().cfg
			cfg.Listener.DenyDetail = mode
			h.apply(&cfg)
			for _, refused := range []struct {
				name, tenant string
				alone        bool // refused as a first request too (else that one is dialled where the name goes)
			}{
				{"x.blocked.example", "web", true},       // deny list
				{"public.example.net", "narrow", true},   // allow list
				{"admin.example.com", "intra", true},     // allow_internal names another host
				{"site1.example.test:8080", "web", true}, // another port
				{"other.example.test", "web", false},     // another address
			} {
				orig := "198.51.100.50:80"
				allowed := "site1.example.test"
				if refused.tenant == "intra" {
					orig, allowed = "10.20.0.20:80", "wiki.example.com"
				}
				first := []byte(minimalDenyResponse)
				if refused.alone {
					c := h.connect(refused.tenant, orig, false)
					_, _ = io.WriteString(c, reqGET(refused.name, "/"))
					first, _ = io.ReadAll(c)
					c.Close()
					if mode == config.DenyDetailMinimal && string(first) != minimalDenyResponse ||
						!strings.HasPrefix(string(first), "HTTP/1.1 403 Forbidden\r\n") {
						t.Fatalf("%s as a first request: %q, want the %s 403 page", refused.name, first, mode)
					}
				} else if mode == config.DenyDetailFull {
					first = []byte(refuse.Forbidden(refuse.Body(true, "\"other.example.test\" is not at the address this connection goes to")))
				}
				c := h.connect(refused.tenant, orig, false)
				_, _ = io.WriteString(c, reqGET(allowed, "/1")+reqGET(refused.name, "/2"))
				later, _ := io.ReadAll(c)
				c.Close()
				if !strings.HasPrefix(string(later), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(later), string(first)) ||
					strings.Count(string(later), "HTTP/1.1 ") != 2 {
					t.Errorf("%s as a later request: %q; want the 200, then exactly %q", refused.name, later, first)
				}
			}
		})
	}
}

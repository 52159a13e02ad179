package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/proxy/proxytest"
	"github.com/egressfw/egressfw/internal/status"
)

// TestStatusSocket: egressfw status's socket, in-process: the report names
// the version, the config and every tenant in config order with its mode
// and port, counts the connections each was just sent and lists its denied
// names; it has the last rules application and the last reload, failed or
// not, as they happen.
func TestStatusSocket(t *testing.T) {
	h := newApplyHarness(t)
	h.d.st.started, h.d.opts.Version = time.Now(), "1.2.3-test"
	stop, err := h.d.serveStatus(filepath.Join(h.dir, "run", "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	fetch := func() status.Report {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, r, err := status.Fetch(ctx, filepath.Join(h.dir, "run", "status.sock"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	gen := h.d.gen.Load()
	h.request(h.addr(gen, "web"), "www.example.com")
	h.request(h.addr(gen, "web"), "x.blocked.example")
	h.request(h.addr(gen, "web"), "x.blocked.example")
	h.request(h.addr(gen, "strict"), "example.com")

	r := fetch()
	if r.Version != "1.2.3-test" || r.Config != h.d.opts.ConfigPath || r.Health != "ok" || time.Since(r.Started) > time.Minute {
		t.Errorf("report head: version %q, config %q, health %q, started %v", r.Version, r.Config, r.Health, r.Started)
	}
	var names []string
	for _, tn := range r.Tenants {
		names = append(names, tn.Name+" "+tn.Mode)
	}
	if strings.Join(names, ", ") != "web enforce, strict enforce, audit report" {
		t.Errorf("tenants %v, want web, strict, audit in config order", names)
	}
	web := r.Tenants[0]
	if web.Port != gen.slots["web"].Port || web.LastMinute != (status.Counts{Connections: 3, Denied: 2}) ||
		len(web.TopDenied) != 1 || web.TopDenied[0].Name != "x.blocked.example" || web.TopDenied[0].Count != 2 ||
		web.TopDenied[0].Reason != "denied_domain" {
		t.Errorf("web: %+v", web)
	}
	if s := r.Tenants[1]; len(s.TopDenied) != 1 || s.TopDenied[0].Name != "example.com" || s.TopDenied[0].Reason != "not_allowed_domain" {
		t.Errorf("strict: %+v", s)
	}
	if a := r.Ruleset.LastApply; a == nil || a.Error != "" || r.Reload.Count != 0 || r.Reload.Last != nil {
		t.Errorf("at start: last apply %+v, reload %+v", a, r.Reload)
	}

	ctx := context.Background()
	h.writeConfig("[[tenant]\n")
	h.d.reload(ctx)
	r = fetch()
	if l := r.Reload.Last; r.Reload.Count != 1 || l == nil || !strings.Contains(l.Error, "config") {
		t.Errorf("after a reload of a bad file: %+v (last %+v)", r.Reload, l)
	}

	h.rules.mu.Lock()
	h.rules.fail = errors.New("the kernel says no")
	h.rules.mu.Unlock()
	h.writeConfig(h.configText(proxytest.Config))
	h.d.reload(ctx)
	r = fetch()
	if a, l := r.Ruleset.LastApply, r.Reload.Last; a == nil || !strings.Contains(a.Error, "the kernel says no") ||
		r.Reload.Count != 2 || l == nil || !strings.Contains(l.Error, "the kernel says no") {
		t.Errorf("after rules the kernel refused: last apply %+v, reload %+v (last %+v)", a, r.Reload, l)
	}

	h.rules.mu.Lock()
	h.rules.fail = nil
	h.rules.mu.Unlock()
	h.d.reload(ctx)
	r = fetch()
	if a, l := r.Ruleset.LastApply, r.Reload.Last; a == nil || a.Error != "" || r.Reload.Count != 3 || l == nil || l.Error != "" {
		t.Errorf("after a good reload: last apply %+v, reload %+v (last %+v)", a, r.Reload, l)
	}
	if r.Tenants[0].LastMinute.Denied != 2 {
		t.Errorf("web's counts after the reload: %+v, want them kept", r.Tenants[0].LastMinute)
	}
}

package daemon

import (
	"context"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/proxy/proxytest"
)

// TestReloadNeverJudgesByAnotherTenant: a reload removes tenant "strict"
// (www.example.com only) and adds tenant "wide" (any public name). The
// kernel sends wide's connections to wide's port as soon as the rules are
// in, before the new snapshot is installed. A connection arriving in that
// moment must not be judged by strict's policy (it was, when wide inherited
// strict's slot and so its live listener and snapshot entry); and once the
// reload is done it is served as wide's.
func TestReloadNeverJudgesByAnotherTenant(t *testing.T) {
	h := newApplyHarness(t)
	strict := "name = \"strict\"\nuids = [1002]\nallow_domains = [\"www.example.com\"]\n"
	if !strings.Contains(proxytest.Config, strict) {
		t.Fatal("proxytest.Config no longer has tenant strict as this test expects")
	}
	second := h.config(strings.Replace(proxytest.Config, strict, "name = \"wide\"\nuids = [1004]\n", 1))

	var between map[string]any
	h.rules.during = func(gen *generation) {
		between = h.request(h.addr(gen, "wide"), "example.com")
	}
	if err := h.d.apply(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	if between["tenant"] == "strict" {
		t.Errorf("a connection of tenant wide, arriving after the rules changed, was judged as tenant strict: %v", between)
	}
	after := h.request(h.addr(h.d.gen.Load(), "wide"), "example.com")
	if after["tenant"] != "wide" || after["decision"] != "allow" {
		t.Errorf("after the reload, wide's connection was logged as %v, want tenant wide allowed", after)
	}
}

package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/egressfw/egressfw/internal/config"
)

// TestManyAddressesBounded: a name answering with 200 addresses that all
// refuse makes one tenant connection try at most listener.max_connect_attempts
// of them (the original destination first), keeps 32 of them
// (dns.max_addresses), and logs a line of bounded size that counts what it
// left out.
func TestManyAddressesBounded(t *testing.T) {
	h := newHarness(t, "")
	var many []string
	for i := 1; i <= 200; i++ {
		many = append(many, fmt.Sprintf("198.51.100.%d", i))
	}
	h.dns.Set("many.example.com", many...)
	// 198.51.100.10 is the harness's web server: only a connection that
	// tries more than 4 addresses (.5 first, then .1 up) gets there.
	status, _ := h.httpGet("web", "198.51.100.5:80", "many.example.com")
	tried := 0
	for _, a := range many {
		tried += int(h.dialCount(a + ":80"))
	}
	if tried != 4 || status != "HTTP/1.1 502 Bad Gateway" {
		t.Fatalf("one connection tried %d addresses and got %q, want 4 (listener.max_connect_attempts) and a 502", tried, status)
	}
	if h.dialCount("198.51.100.5:80") != 1 {
		t.Errorf("the original destination 198.51.100.5 was not tried")
	}
	for i := 33; i <= 200; i++ {
		if n := h.dialCount(fmt.Sprintf("198.51.100.%d:80", i)); n != 0 {
			t.Errorf("198.51.100.%d, beyond dns.max_addresses, was dialled %d times", i, n)
		}
	}
	line := h.waitLog(map[string]any{"tenant": "web", "name": "many.example.com", "reason": "upstream_refused"})
	if got := line["resolved"]; got != "198.51.100.1, 198.51.100.2, 198.51.100.3, 198.51.100.4, 198.51.100.5, 198.51.100.6, 198.51.100.7, 198.51.100.8 (+24 more)" {
		t.Errorf("resolved = %q, want the first 8 and a count", got)
	}
	if got := line["resolved_dropped"]; got != float64(168) {
		t.Errorf("resolved_dropped = %v, want 168", got)
	}
	b, _ := json.Marshal(line)
	if len(b) > 2048 {
		t.Errorf("the connection log line is %d bytes, want it bounded (<= 2048): %s", len(b), b)
	}

	t.Run("a larger bound from the config", func(t *testing.T) {
		h := newHarness(t, "")
		text := strings.Replace(fmt.Sprintf(harnessConfig, h.dns.Addr), "[listener]\n", "[listener]\nmax_connect_attempts = 7\n", 1)
		cfg, err := config.Parse([]byte(text), "harness")
		if err != nil {
			t.Fatal(err)
		}
		h.apply(cfg)
		h.dns.Set("many.example.com", many...)
		h.httpGet("web", "198.51.100.5:80", "many.example.com")
		tried := 0
		for _, a := range many {
			tried += int(h.dialCount(a + ":80"))
		}
		if tried != 7 {
			t.Errorf("tried %d addresses, want 7", tried)
		}
	})
}

// TestCNAMEChainDenied: a name that is allowed on its own but whose CNAME
// chain passes through a deny-listed name is denied before anything is
// dialled; a chain through unlisted names is allowed and logged.
func TestCNAMEChainDenied(t *testing.T) {
	h := newHarness(t, "")
	h.dns.SetCNAME("www.tracked.example", "hop.cdn.example")
	h.dns.SetCNAME("hop.cdn.example", "t.blocked.example") // web denies *.blocked.example
	h.dns.Set("t.blocked.example", "198.51.100.10")
	h.dns.SetCNAME("www.fine.example", "edge.cdn.example")
	h.dns.Set("edge.cdn.example", "198.51.100.10")

	status, _ := h.httpGet("web", "198.51.100.10:80", "www.tracked.example")
	if status != "HTTP/1.1 403 Forbidden" {
		t.Fatalf("chain through a deny-listed name: status %q, want 403", status)
	}
	line := h.waitLog(map[string]any{"tenant": "web", "name": "www.tracked.example", "reason": "denied_domain"})
	if d, _ := line["detail"].(string); !strings.Contains(d, `alias (CNAME) of "t.blocked.example", which is in deny_domains ("*.blocked.example")`) {
		t.Errorf("detail %q does not name the denied alias", d)
	}
	if line["cname"] != "hop.cdn.example, t.blocked.example" {
		t.Errorf("cname = %v, want the chain", line["cname"])
	}
	if n := h.dialCount("198.51.100.10:80"); n != 0 {
		t.Fatalf("the denied chain's address was dialled %d times", n)
	}

	status, body := h.httpGet("web", "198.51.100.10:80", "www.fine.example")
	if status != "HTTP/1.1 200 OK" || !strings.Contains(body, "hello from www.fine.example") {
		t.Fatalf("chain through unlisted names: %q %q, want 200", status, body)
	}
	h.waitLog(map[string]any{"tenant": "web", "name": "www.fine.example", "reason": "allowed", "cname": "edge.cdn.example"})
}

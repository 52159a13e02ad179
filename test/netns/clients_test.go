package netns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// pyClient fetches each URL with urllib (the test CA trusted) and prints
// "STATUS BODY" or "ERR error" per line. Names are looked up in MAP, the
// tenant's own resolution (like curl --resolve).
const pyClient = `
import socket, ssl, sys, urllib.request, urllib.error
MAP = {"www.example.com": "198.51.100.10", "bi-tool.example.com": "10.20.0.10"}
orig = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: orig(MAP.get(host, host), *a, **k)
ctx = ssl.create_default_context(cafile=sys.argv[1])
for url in sys.argv[2:]:
    try:
        r = urllib.request.urlopen(url, context=ctx, timeout=5)
        print(r.status, r.read().decode().strip())
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode().strip())
    except Exception as e:
        print("ERR", repr(e).replace("\n", " "))
`

// TestRealClients: real HTTP clients in a tenant cgroup reach the public
// site and are refused the BI tool, with the refusal each understands.
// Chromium (when installed) sends a post-quantum (ML-KEM) ClientHello,
// larger than one segment of a 1500-byte link. The tenant resolves names
// itself (dns = "direct", the internal DNS allowed direct), so its Go
// client asks egressfw's listener for the BI tool and gets the 403; with
// egressfw's DNS the name does not resolve at all (TestTenantDNS).
func TestRealClients(t *testing.T) {
	tp := newTopo(t)
	tenants := tp.tenant("a", "a", 0, `dns = "direct"`) + tp.tenant("b", "", tp.uid, "")
	d := tp.startEgressfw(tp.config(cfgOpts{interceptPorts: "[80, 443]", tenants: tenants}))
	a := tp.inCgroup("a")
	t.Run("curl", func(t *testing.T) {
		runCases(t, tp, []who{a}, []curlCase{
			{"http", args(resolve("www.example.com", "80", ipPublic), "http://www.example.com/"), okPublic},
			{"https", args(resolve("www.example.com", "443", ipPublic), "https://www.example.com/"), okPublic},
			{"https -6", args("-6", resolve("www.example.com", "443", ip6Public), "https://www.example.com/"), okPublic},
			{"http2 over TLS", args("--http2", resolve("www.example.com", "443", ipPublic), "https://www.example.com/"), okPublic},
			{"bi-tool http", args(resolve("bi-tool.example.com", "80", ipBITool), "http://bi-tool.example.com/"), deniedInt},
			{"bi-tool https", args(resolve("bi-tool.example.com", "443", ipBITool), "https://bi-tool.example.com/"), tlsDenied},
			{"bi-tool https -6", args("-6", resolve("bi-tool.example.com", "443", ip6BITool), "https://bi-tool.example.com/"), tlsDenied},
		})
	})
	t.Run("go net/http", func(t *testing.T) {
		res := tp.get(a, "-dns", ipDNS+":53", "https://www.example.com/")
		if res[0].Status != 200 || !strings.Contains(res[0].Body, "hello from public") {
			t.Errorf("public over TLS: %+v", res[0])
		}
		res = tp.get(a, "-dns", ipDNS+":53", "http://bi-tool.example.com/")
		if res[0].Status != 403 || res[0].ContentType != "text/plain; charset=utf-8" || !strings.Contains(res[0].Body, "is an internal address") {
			t.Errorf("bi-tool: %+v; want the 403", res[0])
		}
		res = tp.get(a, "-dns", ipDNS+":53", "https://bi-tool.example.com/")
		if !strings.Contains(res[0].Err, "access denied") {
			t.Errorf("bi-tool over TLS: %+v; want the access_denied alert", res[0])
		}
	})
	t.Run("python", func(t *testing.T) {
		py := python3
		if err := lookPython(); err != nil {
			t.Skip(err)
		}
		r := tp.run(a, 30*time.Second, py, "-c", pyClient, tp.file("ca.pem"),
			"https://www.example.com/", "http://bi-tool.example.com/", "https://bi-tool.example.com/")
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		wants := []string{"200 hello from public", "403 egressfw denied this request: \"bi-tool.example.com\" is an internal address", "ACCESS_DENIED"}
		if len(lines) != len(wants) {
			t.Fatalf("python printed %q (stderr %s)", r.out, r.errOut)
		}
		for i, w := range wants {
			if !strings.Contains(strings.ToUpper(lines[i]), strings.ToUpper(w)) {
				t.Errorf("python request %d: %q, want %q", i, lines[i], w)
			}
		}
	})
	t.Run("chromium", func(t *testing.T) {
		bin, err := exec.LookPath("chromium")
		if err != nil {
			t.Skip("chromium is not installed (apt-get install -y chromium)")
		}
		i := d.since()
		page := tp.chromium(a, bin, "https://www.example.com/")
		if page == "" {
			// Headless chromium on a loaded machine sometimes dumps nothing
			// although the page came through (the log has its bytes).
			t.Log("chromium dumped an empty page; once more")
			page = tp.chromium(a, bin, "https://www.example.com/")
		}
		if !strings.Contains(page, "hello from public") {
			t.Errorf("chromium page: %q", page)
		}
		if l, ok := d.connLog(i, "www.example.com", ipPublic+":443"); !ok || l.str("decision") != "allow" || l.str("proto") != "tls" {
			t.Errorf("log line of chromium's request: %v", l)
		}
		page = tp.chromium(a, bin, "https://bi-tool.example.com/")
		if strings.Contains(page, "hello from bi-tool") {
			t.Errorf("chromium reached the BI tool: %q", page)
		}
		if l, ok := d.connLog(i, "bi-tool.example.com", ""); !ok || l.str("decision") != "deny" {
			t.Errorf("log line of chromium's denied request: %v", l)
		}
		netnstest.KillCgroup(a.cgroup) // chromium's helpers
	})
	if n := tp.internal.conns(""); n != 0 {
		t.Errorf("internal servers accepted %d connections, want 0", n)
	}
	if t.Failed() {
		t.Logf("egressfw log:\n%s", d.logText())
	}
}

// chromium loads url headless as w and returns the DOM it printed. Names
// are mapped the way the tenant's resolver would answer.
func (tp *topo) chromium(w who, bin, url string) string {
	tp.t.Helper()
	profile, err := os.MkdirTemp(tp.dir, "chromium-")
	if err != nil {
		tp.t.Fatal(err)
	}
	r := tp.run(w, 60*time.Second, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--ignore-certificate-errors",
		"--host-resolver-rules=MAP www.example.com "+ipPublic+", MAP bi-tool.example.com "+ipBITool,
		"--dump-dom", url)
	return r.out
}

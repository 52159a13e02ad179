package sni

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// helloWant is what a captured ClientHello must parse to.
type helloWant struct {
	name  string
	alpn  []string
	ech   bool
	pq    bool // offers an X25519MLKEM768 key share
	tls13 bool // lists TLS 1.3 in supported_versions
}

func TestCapturedClientHellos(t *testing.T) {
	browser := []string{"h2", "http/1.1"}
	cases := []struct {
		name   string
		client func(t *testing.T) func(context.Context, int) error
		want   helloWant
	}{
		{"go-pq", func(*testing.T) func(context.Context, int) error {
			return goClient(&tls.Config{ServerName: "example.test", NextProtos: browser, InsecureSkipVerify: true})
		}, helloWant{name: "example.test", alpn: browser, pq: true, tls13: true}},
		{"go-classic", func(*testing.T) func(context.Context, int) error {
			return goClient(&tls.Config{ServerName: "Example.TEST", NextProtos: []string{"http/1.1"}, InsecureSkipVerify: true,
				CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}})
		}, helloWant{name: "example.test", alpn: []string{"http/1.1"}, tls13: true}},
		{"go-tls12-no-alpn", func(*testing.T) func(context.Context, int) error {
			return goClient(&tls.Config{ServerName: "www.example.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
		}, helloWant{name: "www.example.test"}},
		{"go-ech", func(t *testing.T) func(context.Context, int) error {
			return goClient(&tls.Config{ServerName: "secret.example.test", NextProtos: browser, InsecureSkipVerify: true,
				MinVersion: tls.VersionTLS13, EncryptedClientHelloConfigList: echConfigList(t, "public.example.test")})
		}, helloWant{name: "public.example.test", alpn: browser, ech: true, pq: true, tls13: true}},
		{"curl", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "curl", "-sk", "--max-time", "20", "--resolve", "example.test:PORT:127.0.0.1",
				"https://example.test:PORT/")
		}, helloWant{name: "example.test", alpn: browser, tls13: true}},
		{"openssl-s_client", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "openssl", "s_client", "-connect", "127.0.0.1:PORT", "-servername", "example.test",
				"-alpn", "h2,http/1.1")
		}, helloWant{name: "example.test", alpn: browser, tls13: true}},
		{"python-ssl", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "python3", "-c", `import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
try: ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="example.test")
except OSError: pass`, "PORT")
		}, helloWant{name: "example.test", alpn: []string{"http/1.1"}, tls13: true}},
		{"chromium", func(t *testing.T) func(context.Context, int) error {
			return execClient(t, "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
				"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir="+t.TempDir(), "--host-resolver-rules=MAP example.test 127.0.0.1:PORT",
				"https://example.test/")
		}, helloWant{name: "example.test", alpn: browser, ech: true /* GREASE ECH */, pq: true, tls13: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire := captureHello(t, tc.client(t))
			saveSeed(t, tc.name, wire)
			checkHello(t, wire, tc.want)
		})
	}
}

// TestSeedClientHellos checks the committed captures, so the real-client
// coverage survives on machines without the clients.
func TestSeedClientHellos(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "hellos", "*.bin"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed ClientHellos in testdata/hellos (%v)", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			wire, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			res, st, err := ParseClientHello(wire, 0)
			if st != Done || err != nil || !strings.HasSuffix(res.Name, "example.test") {
				t.Fatalf("ParseClientHello = %+v, %v, %v; want Done with an example.test name", res, st, err)
			}
			checkSplits(t, wire, res)
		})
	}
}

// checkHello asserts the parse of a capture and its fragmented variants.
func checkHello(t *testing.T, wire []byte, want helloWant) {
	t.Helper()
	res, st, err := ParseClientHello(wire, 0)
	if st != Done || err != nil {
		t.Fatalf("ParseClientHello(%d bytes) = %v, %v; want Done", len(wire), st, err)
	}
	t.Logf("%d bytes in %d record(s): name=%q alpn=%q versions=%#04x legacy=%#04x ech=%v",
		len(wire), countRecords(wire), res.Name, res.ALPN, res.SupportedVersions, res.LegacyVersion, res.ECH)
	if res.Kind != KindTLS || res.Name != want.name || res.Addr.IsValid() || res.Port != 0 {
		t.Errorf("kind/name/addr/port = %v/%q/%v/%d; want tls/%q", res.Kind, res.Name, res.Addr, res.Port, want.name)
	}
	if !slices.Equal(res.ALPN, want.alpn) {
		t.Errorf("ALPN = %q; want %q", res.ALPN, want.alpn)
	}
	if res.ECH != want.ech {
		t.Errorf("ECH = %v; want %v", res.ECH, want.ech)
	}
	if got := slices.Contains(res.SupportedVersions, tls.VersionTLS13); got != want.tls13 {
		t.Errorf("supported_versions %#04x has TLS 1.3 = %v; want %v", res.SupportedVersions, got, want.tls13)
	}
	if res.LegacyVersion != tls.VersionTLS12 {
		t.Errorf("legacy_version = %#04x; want 0x0303", res.LegacyVersion)
	}
	groups := keyShareGroups(t, wire)
	if got := slices.Contains(groups, groupX25519MLKEM768); got != want.pq {
		t.Errorf("key_share groups %#04x include X25519MLKEM768 = %v; want %v", groups, got, want.pq)
	}
	if want.pq && len(wire) < 1200 {
		t.Errorf("post-quantum ClientHello is only %d bytes", len(wire))
	}
	checkSplits(t, wire, res)
}

// checkSplits feeds wire one byte at a time and re-fragmented into three
// records of varying sizes or 64-byte records; every variant must give
// want, and every strict prefix must be NeedMore, both parsed from scratch
// and fed to one incremental parser byte by byte.
func checkSplits(t *testing.T, wire []byte, want Result) {
	t.Helper()
	n := len(handshakeBytes(wire))
	variants := map[string][]byte{
		"as captured":             wire,
		"records 1, n/3, rest":    refragment(wire, 1, n/3),
		"records n/2, 7, rest":    refragment(wire, n/2, 7),
		"records 3, 5, rest":      refragment(wire, 3, 5), // splits the handshake header
		"records n-2, 1, 1 (end)": refragment(wire, n-2, 1),
		"64-byte records":         refragment(wire, slices.Repeat([]int{64}, n/64)...),
	}
	for name, v := range variants {
		p := newParser(PeekOptions{}.withDefaults())
		for i := 1; i < len(v); i++ {
			if _, st, err := ParseClientHello(v[:i], 0); st != NeedMore {
				t.Fatalf("%s: prefix of %d/%d bytes = %v, %v; want NeedMore", name, i, len(v), st, err)
			}
			if _, st, err := p.parse(v[:i]); st != NeedMore {
				t.Fatalf("%s: fed byte by byte, %d/%d bytes = %v, %v; want NeedMore", name, i, len(v), st, err)
			}
		}
		got, st, err := ParseClientHello(v, 0)
		if st != Done || err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: = %+v, %v, %v; want %+v", name, got, st, err, want)
		}
		got, st, err = p.parse(v)
		if st != Done || err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: fed byte by byte = %+v, %v, %v; want %+v", name, got, st, err, want)
		}
	}
}

// handshakeBytes concatenates the record payloads of wire.
func handshakeBytes(wire []byte) []byte {
	var hs []byte
	for len(wire) >= 5 {
		n := int(wire[3])<<8 | int(wire[4])
		hs = append(hs, wire[5:5+n]...)
		wire = wire[5+n:]
	}
	return hs
}

func countRecords(wire []byte) int {
	n := 0
	for len(wire) >= 5 {
		wire = wire[5+(int(wire[3])<<8|int(wire[4])):]
		n++
	}
	return n
}

// refragment re-splits wire's handshake bytes into records whose payloads
// have the given sizes, the last record taking the rest.
func refragment(wire []byte, sizes ...int) []byte {
	hs := handshakeBytes(wire)
	var out []byte
	for _, s := range append(sizes, len(hs)) {
		s = min(s, len(hs))
		out = append(out, 0x16, 3, 1, byte(s>>8), byte(s))
		out = append(out, hs[:s]...)
		hs = hs[s:]
		if len(hs) == 0 {
			break
		}
	}
	return out
}

// keyShareGroups lists the groups of the key_share extension, parsed here
// independently of the package.
func keyShareGroups(t *testing.T, wire []byte) []uint16 {
	t.Helper()
	s := cryptobyte.String(handshakeBytes(wire)[4:])
	var skip, exts cryptobyte.String
	if !s.Skip(2+32) || !s.ReadUint8LengthPrefixed(&skip) || !s.ReadUint16LengthPrefixed(&skip) ||
		!s.ReadUint8LengthPrefixed(&skip) || !s.ReadUint16LengthPrefixed(&exts) {
		t.Fatal(errors.New("test parser: bad ClientHello"))
	}
	var groups []uint16
	for !exts.Empty() {
		var typ uint16
		var data, shares cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			t.Fatal("test parser: bad extension")
		}
		if typ != 51 || !data.ReadUint16LengthPrefixed(&shares) {
			continue
		}
		for !shares.Empty() {
			var g uint16
			var key cryptobyte.String
			if !shares.ReadUint16(&g) || !shares.ReadUint16LengthPrefixed(&key) {
				t.Fatal("test parser: bad key share")
			}
			groups = append(groups, g)
		}
	}
	return groups
}

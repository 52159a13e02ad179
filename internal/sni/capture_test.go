package sni

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// update makes TestCapturedClientHellos refresh the committed captures in
// testdata/hellos (the fuzz seeds): go test ./internal/sni -run
// TestCapturedClientHellos -update. It is the project's one golden-refresh
// convention (internal/nft's goldens use the same flag).
var update = flag.Bool("update", false, "rewrite testdata/hellos/*.bin from the real clients' ClientHellos")

// groupX25519MLKEM768 is the post-quantum hybrid key share code point.
const groupX25519MLKEM768 = 0x11ec

// captureHello runs client against a fresh listener on 127.0.0.1 and
// returns the TLS records of the first ClientHello it sends. The listener
// reassembles records itself (independently of the code under test), then
// closes the connection; the client's resulting handshake error is ignored.
func captureHello(t *testing.T, client func(ctx context.Context, port int) error) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type captured struct {
		wire []byte
		err  error
	}
	got := make(chan captured, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				got <- captured{err: err}
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(25 * time.Second))
			wire, err := readHelloRecords(conn)
			conn.Close()
			// A browser may open a spare connection and close it unused
			// (chromium did under load): take the next one.
			if errors.Is(err, io.EOF) && strings.Contains(err.Error(), "after 0 bytes") {
				continue
			}
			got <- captured{wire, err}
			return
		}
	}()
	clientDone := make(chan error, 1)
	go func() { clientDone <- client(ctx, ln.Addr().(*net.TCPAddr).Port) }()
	select {
	case c := <-got:
		cancel() // stops a client that would otherwise retry
		<-clientDone
		if c.err != nil {
			t.Fatalf("capturing ClientHello: %v", c.err)
		}
		return c.wire
	case err := <-clientDone:
		ln.Close()
		c := <-got
		if c.err != nil {
			t.Fatalf("client finished (%v) without a ClientHello: %v", err, c.err)
		}
		return c.wire
	}
}

// readHelloRecords reads whole TLS records until they hold one complete
// handshake message, and returns those records.
func readHelloRecords(r io.Reader) ([]byte, error) {
	var wire, hs []byte
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return nil, fmt.Errorf("record header after %d bytes: %w", len(wire), err)
		}
		payload := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, fmt.Errorf("record payload: %w", err)
		}
		wire = append(append(wire, hdr...), payload...)
		hs = append(hs, payload...)
		if len(hs) >= 4 && len(hs) >= 4+int(hs[1])<<16|int(hs[2])<<8|int(hs[3]) {
			return wire, nil
		}
	}
}

// goClient returns a client that handshakes with crypto/tls using cfg.
func goClient(cfg *tls.Config) func(context.Context, int) error {
	return func(ctx context.Context, port int) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return err
		}
		defer conn.Close()
		return tls.Client(conn, cfg).HandshakeContext(ctx)
	}
}

// execClient returns a client that runs an external program; args may
// contain PORT, replaced by the listener's port. It skips the test when the
// program is not installed.
func execClient(t *testing.T, prog string, args ...string) func(context.Context, int) error {
	t.Helper()
	path, err := exec.LookPath(prog)
	if err != nil {
		t.Skipf("%s is not installed; skipping this real-client capture", prog)
	}
	return func(ctx context.Context, port int) error {
		a := make([]string, len(args))
		for i, s := range args {
			a[i] = replacePort(s, port)
		}
		cmd := exec.CommandContext(ctx, path, a...)
		cmd.Stdin = nil // s_client reads stdin: give it EOF
		// Kill the whole process group (chromium forks helpers) on cancel.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil && ctx.Err() == nil && len(out) > 0 {
			return fmt.Errorf("%s: %w: %.300s", prog, err, out)
		}
		return err
	}
}

func replacePort(s string, port int) string {
	const tok = "PORT"
	for i := 0; i+len(tok) <= len(s); i++ {
		if s[i:i+len(tok)] == tok {
			return s[:i] + strconv.Itoa(port) + s[i+len(tok):]
		}
	}
	return s
}

// echConfigList builds an ECHConfigList (draft-ietf-tls-esni-22 section 4)
// for a fresh X25519 key, so crypto/tls sends a real ECH extension with
// publicName as the outer SNI.
func echConfigList(t *testing.T, publicName string) []byte {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(list *cryptobyte.Builder) {
		list.AddUint16(extECH)
		list.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) {
			c.AddUint8(7)       // config_id
			c.AddUint16(0x0020) // DHKEM(X25519, HKDF-SHA256)
			c.AddUint16LengthPrefixed(func(k *cryptobyte.Builder) { k.AddBytes(key.PublicKey().Bytes()) })
			c.AddUint16LengthPrefixed(func(s *cryptobyte.Builder) {
				s.AddUint16(0x0001) // HKDF-SHA256
				s.AddUint16(0x0001) // AES-128-GCM
			})
			c.AddUint8(64) // maximum_name_length
			c.AddUint8LengthPrefixed(func(n *cryptobyte.Builder) { n.AddBytes([]byte(publicName)) })
			c.AddUint16(0) // no extensions
		})
	})
	return b.BytesOrPanic()
}

// saveSeed writes a capture to testdata/hellos under -update.
func saveSeed(t *testing.T, name string, wire []byte) {
	t.Helper()
	if !*update {
		return
	}
	path := filepath.Join("testdata", "hellos", name+".bin")
	if err := os.WriteFile(path, wire, 0o644); err != nil {
		t.Fatalf("saving seed: %v", err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(wire))
}

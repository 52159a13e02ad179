package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// cmdHello opens -n concurrent TLS connections whose ClientHello (a real
// crypto/tls one, post-quantum key share included) is re-framed into
// records of -record payload bytes and written -chunk bytes at a time with
// -pause after each write; the rest of the handshake and a GET / follow
// normally. It prints one JSON line: how many connections ended in each
// outcome ("200 <first body line>", "alert: tls: ..." or "error: ...").
func cmdHello(args []string) error {
	fs := flag.NewFlagSet("hello", flag.ContinueOnError)
	addr := fs.String("addr", "", "ip:port")
	name := fs.String("name", "", "SNI and Host")
	cacert := fs.String("cacert", "", "PEM file of the CA to trust")
	n := fs.Int("n", 1, "concurrent connections")
	record := fs.Int("record", 0, "ClientHello bytes per TLS record (0: as crypto/tls framed it)")
	chunk := fs.Int("chunk", 0, "bytes per write (0: one record per write)")
	pause := fs.Duration("pause", time.Millisecond, "sleep after each write of the ClientHello")
	timeout := fs.Duration("timeout", 60*time.Second, "per connection")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pem, err := os.ReadFile(*cacert)
	if err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{ServerName: *name, RootCAs: pool, NextProtos: []string{"http/1.1"}}
	d := dripper{record: *record, chunk: *chunk, pause: *pause}
	var mu sync.Mutex
	outcomes := map[string]int{}
	writes, helloLen := 0, 0
	var wg sync.WaitGroup
	t0 := time.Now()
	for range *n {
		wg.Go(func() {
			out, w, hl := d.run(*addr, *name, cfg, *timeout)
			mu.Lock()
			outcomes[out]++
			writes, helloLen = max(writes, w), max(helloLen, hl)
			mu.Unlock()
		})
	}
	wg.Wait()
	emit(map[string]any{"outcomes": outcomes, "hello_bytes": helloLen, "writes": writes, "ms": time.Since(t0).Milliseconds()})
	return nil
}

// dripper re-frames and paces the first flight of a TLS client.
type dripper struct {
	record, chunk int
	pause         time.Duration
}

// run makes one connection and returns its outcome, the number of writes
// its ClientHello took and the ClientHello's length.
func (d dripper) run(addr, name string, cfg *tls.Config, timeout time.Duration) (string, int, int) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "error: dial: " + errText(err), 0, 0
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(timeout))
	dc := &dripConn{Conn: raw, d: d}
	c := tls.Client(dc, cfg)
	if err := c.Handshake(); err != nil {
		return outcome(err), dc.writes, dc.helloLen
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return outcome(err), dc.writes, dc.helloLen
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(line)), dc.writes, dc.helloLen
}

// dripConn rewrites the first Write, crypto/tls's ClientHello record.
type dripConn struct {
	net.Conn
	d        dripper
	done     bool
	writes   int
	helloLen int
}

func (c *dripConn) Write(b []byte) (int, error) {
	if c.done {
		return c.Conn.Write(b)
	}
	c.done = true
	if len(b) < 5 || b[0] != 0x16 || len(b) != 5+(int(b[3])<<8|int(b[4])) {
		return 0, errors.New("first write is not one handshake record")
	}
	msg := b[5:]
	c.helloLen = len(msg)
	wire := b
	if c.d.record > 0 {
		wire = nil
		for rest := msg; len(rest) > 0; {
			k := min(c.d.record, len(rest))
			wire = append(wire, 0x16, b[1], b[2], byte(k>>8), byte(k))
			wire = append(wire, rest[:k]...)
			rest = rest[k:]
		}
	}
	for rest := wire; len(rest) > 0; {
		k := c.d.chunk
		if k <= 0 {
			k = 5 + (int(rest[3])<<8 | int(rest[4])) // one whole record
		}
		k = min(k, len(rest))
		if _, err := c.Conn.Write(rest[:k]); err != nil {
			// Refused before the end: let the handshake read the answer.
			return len(b), nil
		}
		c.writes++
		rest = rest[k:]
		time.Sleep(c.d.pause)
	}
	return len(b), nil
}

// outcome names a failed connection without its addresses or ports; a
// TLS alert from the peer is "alert: tls: <description>".
func outcome(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return "alert: " + op.Err.Error()
	}
	return "error: " + errText(err)
}

func errText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}

package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// cmdHead opens -n concurrent HTTP connections whose request head (a GET
// with Host -name, padded with an X-Pad header to -size bytes) is written
// -chunk bytes at a time with -pause after each write, then reads the
// response. It prints one JSON line as cmdHello does: how many connections
// ended in each outcome ("200 <first body line>", "403 <first body line>"
// or "error: ...").
func cmdHead(args []string) error {
	fs := flag.NewFlagSet("head", flag.ContinueOnError)
	addr := fs.String("addr", "", "ip:port")
	name := fs.String("name", "", "Host")
	n := fs.Int("n", 1, "concurrent connections")
	size := fs.Int("size", 0, "request head bytes (0: no padding)")
	chunk := fs.Int("chunk", 1, "bytes per write")
	pause := fs.Duration("pause", time.Millisecond, "sleep after each write of the head")
	timeout := fs.Duration("timeout", 60*time.Second, "per connection")
	if err := fs.Parse(args); err != nil {
		return err
	}
	head := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", *name)
	if pad := *size - len(head) - len("X-Pad: \r\n\r\n"); pad > 0 {
		head += "X-Pad: " + strings.Repeat("x", pad) + "\r\n"
	}
	head += "\r\n"
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	t0 := time.Now()
	for range *n {
		wg.Go(func() {
			out := dripHead(*addr, head, *chunk, *pause, *timeout)
			mu.Lock()
			outcomes[out]++
			mu.Unlock()
		})
	}
	wg.Wait()
	emit(map[string]any{"outcomes": outcomes, "hello_bytes": len(head), "writes": (len(head) + *chunk - 1) / max(*chunk, 1), "ms": time.Since(t0).Milliseconds()})
	return nil
}

// dripHead makes one connection, writes head in chunks and returns the
// outcome.
func dripHead(addr, head string, chunk int, pause, timeout time.Duration) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "error: dial: " + errText(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	for rest := head; len(rest) > 0; {
		k := min(max(chunk, 1), len(rest))
		if _, err := c.Write([]byte(rest[:k])); err != nil {
			break // refused before the end: read the answer
		}
		rest = rest[k:]
		time.Sleep(pause)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return outcome(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(line))
}

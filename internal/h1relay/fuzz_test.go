package h1relay

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/egressfw/egressfw/internal/tcptest"
)

// FuzzRelay: whatever a tenant sends after its first request and whatever
// the upstream answers, the relay ends (no panic, no hang), and every
// request the upstream received after the first was judged and allowed, in
// order (read back with net/http, the differential reference of
// FuzzRequestStream; unless the upstream switched protocols). Client and
// server bytes both come from the fuzzer, each side closes after writing.
func FuzzRelay(f *testing.F) {
	f.Add([]byte(get("a.example", "/2")), []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/1HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/2"))
	f.Add([]byte("POST /2 HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+get("refused.example", "/3")),
		[]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n/1\r\n0\r\n\r\n"))
	f.Add([]byte("GET /2 HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxx"),
		[]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/1HTTP/1.1 101 Switching Protocols\r\n\r\nyy"))
	f.Add([]byte("\x00\r\n\r\n"), []byte("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"))
	f.Fuzz(func(t *testing.T, client, server []byte) {
		cfg := Config{MaxHead: 1 << 10, HeadTimeout: 100 * time.Millisecond, Idle: time.Second}
		tenant, c := tcptest.Pair(t)
		upSrv, up := tcptest.Pair(t)
		first := get("a.example", "/1")
		go func() {
			tenant.Write([]byte(first))
			tenant.Write(client)
			tenant.CloseWrite()
			io.Copy(io.Discard, tenant)
		}()
		var got bytes.Buffer
		read := make(chan struct{})
		go func() {
			defer close(read)
			upSrv.Write(server)
			upSrv.CloseWrite()
			io.Copy(&got, upSrv)
		}()
		prefix := make([]byte, len(first))
		if _, err := io.ReadFull(c, prefix); err != nil {
			t.Fatal(err)
		}
		var r Conn
		j := &fakeJudge{}
		if _, err := r.Init(c, prefix, cfg, j); err != nil {
			t.Fatalf("Init: %v", err)
		}
		done := make(chan struct{})
		go func() { r.Run(up); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the relay did not end 10 s after both sides closed")
		}
		<-read // the relay closed the upstream: all it sent is in got
		if bytes.Contains(server, []byte(" 101 ")) {
			return // after a switch the bytes are spliced as they come
		}
		checkForwarded(t, got.Bytes(), j)
	})
}

// checkForwarded reads the requests the upstream received and wants the
// first one, then only hosts the judge allowed, in the order it judged.
func checkForwarded(t *testing.T, got []byte, j *fakeJudge) {
	j.mu.Lock()
	allowed := slices.Clone(j.allowedRaw)
	j.mu.Unlock()
	br := bufio.NewReader(bytes.NewReader(got))
	for i := 0; ; i++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return // the end, or bytes net/http frames otherwise (FuzzRequestStream's concern)
		}
		_, berr := io.Copy(io.Discard, req.Body)
		switch {
		case i == 0 && req.Host != "a.example":
			t.Fatalf("the upstream's first request is for %q, want a.example", req.Host)
		case i > 0 && (len(allowed) < i || req.Host != allowed[i-1]):
			t.Fatalf("the upstream received request %d for %q; the judge allowed %q", i, req.Host, allowed)
		}
		if berr != nil {
			return
		}
	}
}

package httphead

import (
	"errors"
	"strings"
	"testing"
)

// TestRequestFraming: the framing of a request head, and every head whose
// framing two parsers could read differently refused as malformed (RFC
// 9112 6.3: CL and TE, several differing CL, TE not exactly chunked,
// obs-fold, bare CR, NUL).
func TestRequestFraming(t *testing.T) {
	const h = "POST / HTTP/1.1\r\nHost: a.example\r\n"
	tests := []struct {
		name string
		head string
		want Framing
		msg  string // substring of the error; "" for none
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", Framing{}, ""},
		{"Content-Length", h + "Content-Length: 12\r\n\r\n", Framing{Body: BodyLength, Length: 12}, ""},
		{"Content-Length 0", h + "Content-Length: 0\r\n\r\n", Framing{}, ""},
		{"leading zeros", h + "Content-Length: 007\r\n\r\n", Framing{Body: BodyLength, Length: 7}, ""},
		{"the same Content-Length twice", h + "Content-Length: 3\r\ncontent-length: 3\r\n\r\n", Framing{Body: BodyLength, Length: 3}, ""},
		{"chunked", h + "Transfer-Encoding: Chunked\r\n\r\n", Framing{Body: BodyChunked}, ""},
		{"close", h + "Connection: keep-alive, Close\r\n\r\n", Framing{Close: true}, ""},
		{"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n", Framing{Close: true}, ""},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", Framing{}, ""},
		{"websocket", h + "Connection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n", Framing{Upgrade: UpgradeWebSocket}, ""},
		{"h2c among others", h + "Upgrade: websocket, h2c\r\n\r\n", Framing{Upgrade: UpgradeH2C}, ""},
		{"another protocol", h + "Upgrade: TLS/1.0\r\n\r\n", Framing{Upgrade: UpgradeOther}, ""},

		{"CL and TE", h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Framing{}, "both Transfer-Encoding and Content-Length"},
		{"TE and CL", h + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Framing{}, "both Transfer-Encoding and Content-Length"},
		{"differing Content-Length", h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", Framing{}, "differ"},
		{"a Content-Length list", h + "Content-Length: 5, 5\r\n\r\n", Framing{}, "not a decimal number"},
		{"a signed Content-Length", h + "Content-Length: +5\r\n\r\n", Framing{}, "not a decimal number"},
		{"an empty Content-Length", h + "Content-Length: \r\n\r\n", Framing{}, "not 1-18 digits"},
		{"a Content-Length too large", h + "Content-Length: 9223372036854775808\r\n\r\n", Framing{}, "not 1-18 digits"},
		{"TE chunked not last", h + "Transfer-Encoding: chunked, identity\r\n\r\n", Framing{}, "not exactly chunked"},
		{"TE gzip, chunked", h + "Transfer-Encoding: gzip, chunked\r\n\r\n", Framing{}, "not exactly chunked"},
		{"TE twice", h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Framing{}, "several Transfer-Encoding"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Framing{}, "HTTP/1.0 request"},
		{"obs-fold", h + "Transfer-Encoding:\r\n chunked\r\n\r\n", Framing{}, "obsolete line folding"},
		{"bare CR", h + "X: a\rContent-Length: 5\r\n\r\n", Framing{}, "bare CR"},
		{"NUL", h + "X: a\x00\r\n\r\n", Framing{}, "control byte"},
		{"space before the colon", h + "Content-Length : 5\r\n\r\n", Framing{}, "not a token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Requests
			r.Init(0)
			step, err := r.Next([]byte(tc.head))
			if tc.msg != "" {
				if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err %v, want malformed with %q", err, tc.msg)
				}
				return
			}
			if err != nil || step.Kind != StepHead || step.N != int64(len(tc.head)) {
				t.Fatalf("Next = %+v, %v; want the whole head", step, err)
			}
			if got := r.Framing(); got != tc.want {
				t.Fatalf("framing %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestChunkedFraming: chunk-size lines, the CRLF after data and trailers
// are checked; anything else in the framing is malformed.
func TestChunkedFraming(t *testing.T) {
	const h = "POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name, body string
		payload    string // the data, when the body is well framed
		msg        string
	}{
		{"chunks and a trailer", "5\r\nhello\r\nA;n=v\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n", "hello0123456789", ""},
		{"extension after whitespace", "3 ;x\r\nabc\r\n0\r\n\r\n", "abc", ""},
		{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""},
		{"16 hex digits", "0000000000000003\r\nabc\r\n0\r\n\r\n", "abc", ""},
		{"bare LF after the size", "5\nhello\r\n0\r\n\r\n", "", "bare LF"},
		{"whitespace after the size", "5 \r\nhello\r\n0\r\n\r\n", "", "not an extension"},
		{"17 hex digits", "00000000000000003\r\nabc\r\n0\r\n\r\n", "", "too large"},
		{"a size of 2^62", "4000000000000000\r\n", "", "too large"},
		{"no hex digit", "x\r\n", "", "does not start with a hex number"},
		{"a signed size", "-1\r\n", "", "does not start with a hex number"},
		{"a control byte in an extension", "1;a\x01\r\nx\r\n0\r\n\r\n", "", "control byte"},
		{"data longer than its size", "3\r\nabcd\r\n0\r\n\r\n", "", "not followed by CRLF"},
		{"a bare CR in the trailer", "0\r\nX: a\rb\r\n\r\n", "", "bare CR"},
		{"an obs-fold trailer", "0\r\nX: a\r\n b\r\n\r\n", "", "obsolete line folding"},
		{"a chunk-size line too long", "1;" + strings.Repeat("x", MaxChunkLine) + "\r\n", "", "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, end, err := walkRequests([]byte(h+tc.body), 1024, cutter(nil))
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("ended %s, %v; want malformed with %q", end, err, tc.msg)
				}
				return
			}
			if err != nil || end != endEOF || len(got) != 1 || got[0].Body != tc.payload {
				t.Fatalf("got %v, %s, %v; want one request with payload %q", got, end, err, tc.payload)
			}
		})
	}
}

// TestResponseFraming: where a response ends, given the request it answers.
func TestResponseFraming(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		toHEAD bool
		want   string // the responses' statuses and bodies, as walkResponses finds them
		end    string
	}{
		{"Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n", false, "200 body \"ok\"\n204 body \"\"\n", endEOF},
		{"HEAD: no body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true, "200 body \"\"\n", endEOF},
		{"304 and 204 with a length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", false,
			"304 body \"\"\n204 body \"\"\n", endEOF},
		{"100 then the final one", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false,
			"100 body \"\"\n200 body \"ok\"\n", endEOF},
		{"101 ends the HTTP part", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00", false, "101 body \"\"\n", endStopped},
		{"until close", "HTTP/1.0 200 OK\r\n\r\nthe rest", false, "200 body \"the rest\"\n", endEOF},
		{"no reason phrase", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, "200 body \"\"\n", endEOF},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", false, "", endRefused},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, "", endRefused},
		{"status 600", "HTTP/1.1 600 Odd\r\n\r\n", false, "", endRefused},
		{"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", false, "", endRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, end, err := walkResponses([]byte(tc.in), func(int) bool { return tc.toHEAD }, cutter(nil))
			if fmtSeen(got) != tc.want || end != tc.end {
				t.Fatalf("got %q, ended %s (%v); want %q, %s", fmtSeen(got), end, err, tc.want, tc.end)
			}
		})
	}
}

// TestRequestsResolveOnDemand: the host of a head is read only when asked
// (Resolve); HostValue gives the raw Host of an origin-form request.
func TestRequestsResolveOnDemand(t *testing.T) {
	var r Requests
	r.Init(0)
	buf := []byte("GET /x HTTP/1.1\r\nHost:  WWW.Example.Test.:80 \r\n\r\n")
	if _, err := r.Next(buf); err != nil {
		t.Fatal(err)
	}
	if r.Head().Name != "" {
		t.Fatalf("name %q read before Resolve", r.Head().Name)
	}
	if raw, ok := r.HostValue(buf); !ok || string(raw) != "WWW.Example.Test.:80" {
		t.Fatalf("HostValue = %q, %v", raw, ok)
	}
	h, err := r.Resolve(buf)
	if err != nil || h.Name != "www.example.test" || h.Port != 80 {
		t.Fatalf("Resolve = %+v, %v", h, err)
	}
	r.Init(0)
	buf = []byte("GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n")
	if _, err := r.Next(buf); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.HostValue(buf); ok {
		t.Fatal("HostValue of an absolute-form request: the target names the host too")
	}
}

package httphead

import "testing"

// TestRequestsDoNotAllocate: following the usual kept-alive request (a GET
// head, then a POST head and its Content-Length body) and reading its raw
// Host allocates nothing, so judging every request adds no garbage per
// request on the common path.
func TestRequestsDoNotAllocate(t *testing.T) {
	get := []byte("GET /x HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n")
	post := []byte("POST /up HTTP/1.1\r\nHost: www.example.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
	var r Requests
	r.Init(0)
	n := testing.AllocsPerRun(200, func() {
		for _, buf := range [][]byte{get, post} {
			for len(buf) > 0 {
				step, err := r.Next(buf)
				if err != nil || step.Kind == StepMore {
					t.Fatalf("Next = %+v, %v", step, err)
				}
				if step.Kind == StepHead {
					if _, ok := r.HostValue(buf); !ok {
						t.Fatal("no Host")
					}
				}
				k := min(step.N, int64(len(buf)))
				r.Advance(k)
				buf = buf[k:]
			}
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per two requests, want 0", n)
	}
}

// Package h1relay relays a plain-HTTP (HTTP/1.x) connection request by
// request: it follows the client's requests and the upstream's responses
// with internal/httphead's framing, splices bodies with internal/tproxy,
// and asks its caller (a Judge) about each request after the first before
// any byte of it is forwarded. A refused request gets the Judge's answer
// in its turn, after the responses to the requests before it, and ends the
// connection.
//
// Layout: relay.go the Conn, the Judge it asks and the queue of requests
// in flight shared by the two pumps; requests.go the client-to-upstream
// pump; responses.go the upstream-to-client pump; buf.go the pooled
// buffers that hold a head while it is read.
//
// The package knows nothing of tenants or policy: internal/proxy judges
// (policy.DecideOn, with the first request's decision), logs and counts.
package h1relay

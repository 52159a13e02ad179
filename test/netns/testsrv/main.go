// Command testsrv is the helper program of egressfw's end-to-end tests and
// demo. It runs inside a test network namespace (started with nsenter) as
// either a server or a client:
//
//	testsrv serve -spec FILE     HTTP, HTTPS, raw TCP and DNS servers; one JSON
//	                             event per request on stdout ("ready" first)
//	testsrv get URL              an HTTP(S) request with Go net/http
//	testsrv keepalive -addr A H… Go net/http requests for hosts H on one kept-alive connection
//	testsrv raw -addr A -send S  raw bytes to a TCP address, the reply back
//	testsrv bulk ...             a byte-exact transfer with half-close
//	testsrv idle -addr A -n N    N connections that never send a byte
//	testsrv userns ... -- CMD    CMD as a uid of a user namespace (see cmdUserns)
//	testsrv hello -addr A ...    N TLS connections dripping their ClientHello
//	testsrv head -addr A ...     N HTTP connections dripping their request head
//	testsrv hold -addr A -send S connect now, send S when stdin says so
//	testsrv dnsload -server A    N DNS queries from C workers: throughput, latency
//
// Every client prints exactly one JSON object on stdout and exits 0, so the
// caller reads success and failure the same way; servers run until killed.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsrv serve|get|keepalive|raw|bulk|idle|userns|hello|head|hold|dnsload ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"serve":     cmdServe,
		"get":       cmdGet,
		"keepalive": cmdKeepAlive,
		"raw":       cmdRaw,
		"bulk":      cmdBulk,
		"idle":      cmdIdle,
		"hello":     cmdHello,
		"head":      cmdHead,
		"hold":      cmdHold,
		"dnsload":   cmdDNSLoad,
	}
	cmds["userns"] = cmdUserns
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "testsrv: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "testsrv %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// emit writes one JSON object as a line on stdout.
func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"ev":"error","err":%q}`, err.Error()))
	}
	os.Stdout.Write(append(b, '\n'))
}

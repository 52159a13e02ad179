package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"time"
)

// cmdKeepAlive makes one plain-HTTP GET per host argument with Go net/http,
// all to -addr, naming each host in its Host header, with keep-alive and at
// most one connection: the requests share one connection while it lasts.
// It prints one JSON line per request: status, body, whether the
// connection was a reused one, err.
func cmdKeepAlive(args []string) error {
	fs := flag.NewFlagSet("keepalive", flag.ContinueOnError)
	addr := fs.String("addr", "", "ip:port")
	path := fs.String("path", "/", "request path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("want at least one host")
	}
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for _, host := range fs.Args() {
		res := map[string]any{}
		req, err := http.NewRequest(http.MethodGet, "http://"+*addr+*path, nil)
		if err != nil {
			return err
		}
		req.Host = host
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { res["reused"] = i.Reused },
		}))
		resp, err := client.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			res["status"], res["body"], err = resp.StatusCode, string(body), rerr
		}
		if err != nil {
			res["err"] = fmt.Sprint(err)
		}
		emit(res)
	}
	return nil
}

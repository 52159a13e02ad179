package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// cmdHold connects to -addr and prints {"connected":...}; then it waits for
// a line on stdin, sends -send, half-closes and prints {"reply":...,"err":...}
// with what came back before EOF or -timeout. A test opens the connection
// at one moment and uses it at another.
func cmdHold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	addr := fs.String("addr", "", "ip:port")
	send := fs.String("send", "", "bytes to send, as a Go string literal body (\\r\\n escapes)")
	timeout := fs.Duration("timeout", 3*time.Second, "connect, and read after sending")
	if err := fs.Parse(args); err != nil {
		return err
	}
	payload, err := strconv.Unquote(`"` + *send + `"`)
	if err != nil {
		return fmt.Errorf("unquote -send: %w", err)
	}
	c, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		emit(map[string]any{"connected": false, "err": err.Error()})
		return nil
	}
	defer c.Close()
	emit(map[string]any{"connected": true, "local": c.LocalAddr().String()})
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("wait for the go-ahead on stdin: %w", err)
	}
	res := map[string]any{}
	defer emit(res)
	c.SetDeadline(time.Now().Add(*timeout))
	if _, err := io.WriteString(c, payload); err != nil {
		res["err"] = "write: " + err.Error()
		return nil
	}
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	res["reply"] = string(reply)
	if err != nil {
		res["err"] = "read: " + err.Error()
	}
	return nil
}

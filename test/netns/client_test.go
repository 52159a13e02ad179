package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/egressfw/egressfw/internal/netnstest"
)

// who is the identity a client process runs as: in a cgroup (a tenant's, by
// path relative to the slice), as a uid, or neither (a non-tenant).
type who struct {
	label  string
	cgroup string // absolute cgroup directory, "" for the test's own
	uid    int    // 0: root
	netns  string // namespace to run in: a name, a /proc/PID/ns/net path, or "" for the topology's host

	wrap []string // argv run in front of the command (e.g. testsrv userns ... --)
}

// setupCgroups creates the run's slice with the leaves "a" and "b" and
// removes them (killing what is left inside) at cleanup.
func (tp *topo) setupCgroups() {
	dir := netnstest.NewCgroup(tp.t, tp.id+".slice", "a", "b")
	tp.cgRoot, tp.slice = filepath.Dir(dir), filepath.Base(dir)
}

// inCgroup is a client in leaf of the run's slice (tenant "a" is leaf "a").
func (tp *topo) inCgroup(leaf string) who {
	return who{label: "cgroup_" + leaf, cgroup: filepath.Join(tp.cgRoot, tp.slice, leaf)}
}

// asUID is a client running as the uid tenant's uid.
func (tp *topo) asUID() who { return who{label: fmt.Sprintf("uid_%d", tp.uid), uid: tp.uid} }

// nonTenant is a client outside every tenant cgroup and uid.
func nonTenant() who { return who{label: "non-tenant"} }

// result is what a client process did.
type result struct {
	out, errOut string
	code        int // exit code, -1 when killed by the timeout
	dur         time.Duration
}

// run runs argv in the host namespace as w, killed after timeout.
func (tp *topo) run(w who, timeout time.Duration, argv ...string) result {
	tp.t.Helper()
	cmd, closeFD := tp.command(w, argv...)
	defer closeFD()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 2 * time.Second // children (chromium's) may hold the pipes
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		tp.t.Fatalf("start %v: %v", argv, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return result{out: out.String(), errOut: errOut.String(), code: -1, dur: time.Since(t0)}
	}
	res := result{out: out.String(), errOut: errOut.String(), dur: time.Since(t0)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.code = ee.ExitCode()
	} else if err != nil {
		tp.t.Fatalf("run %v: %v", argv, err)
	}
	return res
}

// command builds the nsenter command for w: placed into the cgroup at
// clone time (CLONE_INTO_CGROUP), so not a single packet leaves outside it.
func (tp *topo) command(w who, argv ...string) (*exec.Cmd, func()) {
	ns := tp.host
	if w.netns != "" {
		ns = w.netns
	}
	args := []string{"--net=" + netnstest.PathOf(ns)}
	if w.uid != 0 {
		args = append(args, "-S", strconv.Itoa(w.uid), "-G", strconv.Itoa(w.uid))
	}
	cmd := exec.Command("nsenter", append(append(append(args, "--"), w.wrap...), argv...)...)
	cmd.Env = append(os.Environ(), "HOME="+tp.dir)
	if w.cgroup == "" {
		return cmd, func() {}
	}
	closeFD, err := netnstest.IntoCgroup(cmd, w.cgroup)
	if err != nil {
		tp.t.Fatal(err)
	}
	return cmd, closeFD
}

// curlRes is the outcome of one curl run.
type curlRes struct {
	status int    // HTTP status, 0 when there was no response
	body   string // response body
	exit   int    // curl's exit code
	stderr string
	dur    time.Duration
}

func (c curlRes) String() string {
	return fmt.Sprintf("curl exit %d, status %d, body %q, stderr %q, %v", c.exit, c.status, c.body, c.stderr, c.dur.Round(time.Millisecond))
}

// curl runs curl as w with the test CA trusted and a 5s limit.
func (tp *topo) curl(w who, args ...string) curlRes {
	tp.t.Helper()
	argv := append([]string{"curl", "-sS", "-m", "5", "--cacert", tp.file("ca.pem"), "-o", "-", "-w", "\n%{http_code}"}, args...)
	r := tp.run(w, 15*time.Second, argv...)
	body, code, _ := cutLast(r.out, "\n")
	status, _ := strconv.Atoi(code)
	return curlRes{status: status, body: body, exit: r.code, stderr: strings.TrimSpace(r.errOut), dur: r.dur}
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+len(sep):], true
}

// getRes is one request of testsrv get (Go net/http).
type getRes struct {
	Status      int    `json:"status"`
	Body        string `json:"body"`
	ContentType string `json:"content_type"`
	Err         string `json:"err"`
	MS          int64  `json:"ms"`
	Bytes       int64  `json:"bytes"`
	PatternOK   bool   `json:"pattern_ok"`
}

// helper runs testsrv with args as w and decodes its JSON lines into out
// (a pointer to a slice).
func (tp *topo) helper(w who, timeout time.Duration, out any, args ...string) {
	tp.t.Helper()
	r := tp.run(w, timeout, append([]string{testsrvBin}, args...)...)
	if r.code != 0 {
		tp.t.Fatalf("testsrv %v as %s: exit %d: %s", args, w.label, r.code, r.errOut)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if err := json.Unmarshal([]byte("["+strings.Join(lines, ",")+"]"), out); err != nil {
		tp.t.Fatalf("testsrv %v: decode %q: %v", args, r.out, err)
	}
}

// get makes HTTP requests with Go net/http as w (see testsrv get).
func (tp *topo) get(w who, args ...string) []getRes {
	tp.t.Helper()
	var res []getRes
	tp.helper(w, 60*time.Second, &res, append([]string{"get", "-cacert", tp.file("ca.pem")}, args...)...)
	return res
}

// rawRes is one testsrv raw exchange.
type rawRes struct {
	Connected bool   `json:"connected"`
	Reply     string `json:"reply"`
	Err       string `json:"err"`
	MS        int64  `json:"ms"`
}

// raw sends bytes (Go escapes allowed) to addr as w and returns the reply;
// flags are more of testsrv raw's (-close-write: half-close after sending).
func (tp *topo) raw(w who, addr, send string, flags ...string) rawRes {
	tp.t.Helper()
	var res []rawRes
	tp.helper(w, 20*time.Second, &res, append(append([]string{"raw"}, flags...), "-addr", addr, "-send", send)...)
	return res[0]
}

// python3 is the Python the client tests run, or a skip reason.
const python3 = "/usr/bin/python3"

func lookPython() error {
	_, err := os.Stat(python3)
	return err
}

func (tp *topo) file(name string) string { return filepath.Join(tp.dir, name) }

package netns

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// probeScript sends one TCP connection (then the token), UDP datagram
// (the token, twice) or ICMP echo from src:sport (either may be empty or
// 0; a link-local address takes a %dev scope) to dst:dport and prints what
// the sender saw: ok (connected, sent, answered), refused (a TCP reset),
// rejected (an ICMP error to an echo), timeout, or error: ... .
const probeScript = `import socket,sys,struct,time
proto,src,sport,dst,dport,tok=sys.argv[1:7]
sport,dport=int(sport),int(dport)
fam=socket.AF_INET6 if ':' in dst else socket.AF_INET
any_=('::' if fam==socket.AF_INET6 else '0.0.0.0')
def ad(a,p): return socket.getaddrinfo(a,p,fam,0,0,socket.AI_NUMERICHOST)[0][4]
def csum(b):
    s=sum(struct.unpack('!%dH'%(len(b)//2),b)); s=(s>>16)+(s&0xffff); s+=s>>16
    return ~s&0xffff
try:
    if proto=='tcp':
        s=socket.socket(fam,socket.SOCK_STREAM); s.settimeout(1.5)
        if src or sport: s.bind(ad(src or any_,sport))
        s.connect(ad(dst,dport)); s.send(tok.encode()); time.sleep(0.1); print('ok')
    elif proto=='udp':
        s=socket.socket(fam,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
        if src or sport: s.bind(ad(src or any_,sport))
        s.sendto(tok.encode(),ad(dst,dport)); time.sleep(0.1); s.sendto(tok.encode(),ad(dst,dport)); print('ok')
    else:
        if fam==socket.AF_INET:
            s=socket.socket(fam,socket.SOCK_RAW,socket.IPPROTO_ICMP); want,err=0,3
            b=struct.pack('!BBHHH',8,0,0,0x4567,1)+tok.encode().ljust(16,b'.'); b=b[:2]+struct.pack('!H',csum(b))+b[4:]
        else:
            s=socket.socket(fam,socket.SOCK_RAW,socket.IPPROTO_ICMPV6); want,err=129,1
            b=struct.pack('!BBHHH',128,0,0,0x4567,1)+tok.encode()
        if src: s.bind(ad(src,0))
        s.sendto(b,ad(dst,0)); end=time.time()+1.5
        while True:
            s.settimeout(max(0.01,end-time.time())); r=s.recv(2000)
            if fam==socket.AF_INET: r=r[(r[0]&15)*4:]
            if r[0]==want and r[4:6]==b'\x45\x67': print('ok'); break
            if r[0]==err: print('rejected'); break
except socket.timeout: print('timeout')
except ConnectionRefusedError: print('refused')
except OSError as e: print('error: '+str(e))
`

// catchScript listens on TCP and UDP ports ("tcp:80", "udp:67") of every
// address (IPv4 and IPv6) and prints "<first bytes> <peer>" per arrival.
const catchScript = `import socket,select,sys
ls=[];us=[]
for a in sys.argv[1:]:
    p,port=a.split(':')
    s=socket.socket(socket.AF_INET6,socket.SOCK_STREAM if p=='tcp' else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)
    s.bind(('::',int(port)))
    if p=='tcp': s.listen(16); ls.append(s)
    else: us.append(s)
print('ready',flush=True)
while True:
    r,_,_=select.select(ls+us,[],[])
    for s in r:
        if s in us:
            b,peer=s.recvfrom(2000); print(b.decode(errors='replace'),peer[0],flush=True); continue
        c,peer=s.accept(); c.settimeout(1)
        try: b=c.recv(100)
        except OSError: b=b'(nothing)'
        print(b.decode(errors='replace'),peer[0],flush=True); c.close()
`

// catcher is a running catchScript and what it printed.
type catcher struct {
	name  string
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
}

// catch starts a catcher in namespace ns (a name or /proc path) on the
// given "tcp:PORT"/"udp:PORT"; it is killed at cleanup.
func (tp *topo) catch(name, ns string, ports ...string) *catcher {
	tp.t.Helper()
	c := &catcher{name: name, cmd: nsCmd(ns, append([]string{"python3", "-u", "-c", catchScript}, ports...)...)}
	tp.startReady(fmt.Sprintf("catcher %s on %v", name, ports), c.cmd, func(l string) {
		c.mu.Lock()
		c.lines = append(c.lines, l)
		c.mu.Unlock()
	})
	return c
}

// startReady starts cmd, waits for its first line, "ready", and hands
// every later line to line; cmd is killed at cleanup.
func (tp *topo) startReady(what string, cmd *exec.Cmd, line func(string)) {
	tp.t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		tp.t.Fatal(err)
	}
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		tp.t.Fatalf("%s did not start: %q %s", what, sc.Text(), errOut.String())
	}
	go func() {
		for sc.Scan() {
			line(sc.Text())
		}
	}()
}

// got reports whether token arrived within wait.
func (c *catcher) got(token string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			if strings.HasPrefix(l, token+" ") {
				c.mu.Unlock()
				return true
			}
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe is one packet a namespace sends and where it would arrive.
type probe struct {
	name  string
	from  who
	proto string // tcp, udp, icmp
	src   string // source address ("" for the routed one)
	sport int
	dst   string
	dport int
	at    *catcher // where a TCP or UDP probe arrives (nil: judged by the sender only)
}

var probeSeq int

// send runs p and returns the sender's verdict and whether the catcher
// got it.
func (tp *topo) send(p probe) (string, bool) {
	tp.t.Helper()
	probeSeq++
	tok := fmt.Sprintf("tok%d", probeSeq)
	r := tp.run(p.from, 10*time.Second, "python3", "-c", probeScript, p.proto, p.src, fmt.Sprint(p.sport), p.dst, fmt.Sprint(p.dport), tok)
	out := strings.TrimSpace(r.out + r.errOut)
	if p.at == nil {
		return out, false
	}
	wait := 400 * time.Millisecond
	if p.proto == "tcp" && out != "ok" {
		wait = 50 * time.Millisecond
	}
	return out, p.at.got(tok, wait)
}

// expectProbe checks that p was "reached" (connected or delivered, and
// answered for ICMP) or "dropped" (no answer, no error, nothing arrived).
func (tp *topo) expectProbe(t *testing.T, p probe, want string) {
	t.Helper()
	out, arrived := tp.send(p)
	switch want {
	case "reached":
		if (p.proto != "udp" && out != "ok") || (p.at != nil && !arrived) {
			t.Errorf("%s: sender saw %q, arrived %v; want it to arrive", p.name, out, arrived)
		}
	case "dropped":
		if (p.proto != "udp" && out != "timeout") || arrived {
			t.Errorf("%s: sender saw %q, arrived %v; want it dropped (a timeout, nothing arriving)", p.name, out, arrived)
		}
	default:
		t.Fatalf("unknown expectation %q", want)
	}
}

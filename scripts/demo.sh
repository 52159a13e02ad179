#!/usr/bin/env bash
# demo.sh EGRESSFW_BINARY — show egressfw's decisions in throwaway network
# namespaces: a tenant (a cgroup) on a "host", a public web site, an internal
# BI tool behind split-horizon DNS, and a cloud metadata address. Everything
# is removed on exit. Run as root: sudo make demo
set -euo pipefail

BIN=$(readlink -f "${1:-bin/egressfw}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "demo.sh: needs root (sudo make demo)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "demo.sh: no egressfw binary at $BIN (make build)" >&2; exit 1; }
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

ID=egfw-demo-$$
HOST=$ID-host PUB=$ID-pub INT=$ID-int
DIR=$(mktemp -d "/tmp/$ID.XXXXXX")
CGROOT=$(awk '{for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup2") print $5; break }}' /proc/self/mountinfo | head -n1)
SLICE=$ID.slice
CG=$CGROOT/$SLICE/webhooks
PIDS=()

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	if [ -d "$CG" ]; then
		echo 1 > "$CG/cgroup.kill" 2>/dev/null
		rmdir "$CG" "$CGROOT/$SLICE" 2>/dev/null
	fi
	for ns in "$HOST" "$PUB" "$INT"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$DIR"
}
trap cleanup EXIT

echo "== building the demo servers (test/netns/testsrv)"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$DIR/testsrv" ./test/netns/testsrv)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=www.example.com \
	-addext "subjectAltName=DNS:*.example.com" -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null

echo "== namespaces: $HOST (egressfw + tenant), $PUB (198.51.100.10), $INT (10.20.0.0/24, 169.254.169.254, DNS)"
for ns in "$HOST" "$PUB" "$INT"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$HOST" link add vpub type veth peer name vhost netns "$PUB"
ip -n "$HOST" link add vint type veth peer name vhost netns "$INT"
ip -n "$HOST" addr add 198.51.100.1/24 dev vpub
ip -n "$HOST" addr add 10.20.0.1/24 dev vint
ip -n "$PUB" addr add 198.51.100.10/24 dev vhost
for a in 10.20.0.10/24 10.20.0.53/24 169.254.169.254/32; do ip -n "$INT" addr add "$a" dev vhost; done
for ns in "$HOST" "$PUB" "$INT"; do ip -n "$ns" link set vhost up 2>/dev/null || true; done
ip -n "$HOST" link set vpub up; ip -n "$HOST" link set vint up
ip -n "$HOST" route add default via 198.51.100.10
ip -n "$HOST" route add 169.254.169.254/32 dev vint
ip -n "$PUB" route add default via 198.51.100.1
ip -n "$INT" route add default via 10.20.0.1

cat > "$DIR/pub.json" <<JSON
{"http": [":80"], "https": [":443"], "cert": "$DIR/cert.pem", "key": "$DIR/key.pem",
 "labels": {"198.51.100.10": "the public site"}}
JSON
cat > "$DIR/int.json" <<JSON
{"http": [":80"], "labels": {"10.20.0.10": "the internal BI tool (no login!)", "169.254.169.254": "cloud metadata (credentials!)"},
 "dns": ["10.20.0.53:53"],
 "zone": {"www.example.com": {"a": ["198.51.100.10"]}, "bi-tool.example.com": {"a": ["10.20.0.10"]},
          "metadata.example.com": {"a": ["169.254.169.254"]}}}
JSON
start_server() {
	# nsenter execs the program, so $! is the server itself (a shell
	# function in the background would be a subshell that kill misses).
	nsenter --net="/run/netns/$1" -- "$DIR/testsrv" serve -spec "$2" > "$DIR/$1.events" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do grep -q '"ready"' "$DIR/$1.events" && return; sleep 0.1; done
	echo "server in $1 did not start:"; cat "$DIR/$1.events"; exit 1
}
start_server "$PUB" "$DIR/pub.json"
start_server "$INT" "$DIR/int.json"

mkdir -p "$CG"
cat > "$DIR/egressfw.toml" <<TOML
[dns]
servers = ["10.20.0.53:53"]   # the host's resolver is the internal, split-horizon DNS
[metrics]
listen = ""
status_socket = "$DIR/status.sock"   # what egressfw status reads
[policy]
public_cidrs = ["198.51.100.0/24"]   # a documentation range playing the Internet
[[tenant]]
name = "webhooks"
cgroups = ["$SLICE/webhooks"]
  [[tenant.allow_direct]]
  cidr = "10.20.0.53/32"
  ports = [53]
TOML
echo "== starting: egressfw run --config $DIR/egressfw.toml (tenant \"webhooks\" = cgroup $SLICE/webhooks)"
nsenter --net="/run/netns/$HOST" -- "$BIN" run --config "$DIR/egressfw.toml" > "$DIR/egressfw.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q 'egressfw started' "$DIR/egressfw.log" && break; sleep 0.1; done
grep -q 'egressfw started' "$DIR/egressfw.log" || { echo "egressfw did not start:"; cat "$DIR/egressfw.log"; exit 1; }

# What the split-horizon DNS tells the tenant (its own lookups, as curl --resolve).
declare -A ADDR=([www.example.com]=198.51.100.10 [bi-tool.example.com]=10.20.0.10 [metadata.example.com]=169.254.169.254)

# request WHO DESCRIPTION URL [curl args...]: run curl as the tenant (or not)
# and print ALLOWED/DENIED with the reason.
request() {
	local who=$1 what=$2 url=$3; shift 3
	local host port scheme
	scheme=${url%%://*}; host=${url#*://}; host=${host%%/*}
	port=80; [ "$scheme" = https ] && port=443
	local extra=()
	[ -n "${ADDR[$host]:-}" ] && extra=(--resolve "$host:$port:${ADDR[$host]}")
	local lines_before out rc=0
	lines_before=$(wc -l < "$DIR/egressfw.log")
	local run=(nsenter --net="/run/netns/$HOST" -- curl -sS -k -m 5 -o "$DIR/body" -w '%{http_code}' "${extra[@]}" "$@" "$url")
	if [ "$who" = tenant ]; then
		out=$(sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "${run[@]}" 2>"$DIR/err") || rc=$?
	else
		out=$("${run[@]}" 2>"$DIR/err") || rc=$?
	fi
	sleep 0.1
	local reason
	reason=$(tail -n +"$((lines_before + 1))" "$DIR/egressfw.log" | python3 -c '
import json, sys
for line in sys.stdin:
    try: l = json.loads(line)
    except ValueError: continue
    if l.get("msg") == "connection":
        print("egressfw log: decision=%s reason=%s dialed=%s" % (l["decision"], l["reason"], l.get("dialed", "-")))')
	printf '\n%-10s %s\n           curl %s\n' "[$who]" "$what" "$* $url"
	if [ "$rc" = 0 ] && [ "$out" = 200 ]; then
		printf '  %s  200: %s\n' "$ALLOWED" "$(head -c 200 "$DIR/body")"
	elif [ "$rc" = 0 ]; then
		printf '  %s   %s: %s\n' "$DENIED" "$out" "$(head -c 200 "$DIR/body")"
	else
		printf '  %s   curl exit %s: %s\n' "$DENIED" "$rc" "$(head -n1 "$DIR/err")"
	fi
	[ -z "$reason" ] || echo "           $reason"
	return 0
}

ALLOWED=ALLOWED DENIED=DENIED
if [ -t 1 ]; then ALLOWED=$'\e[32mALLOWED\e[0m' DENIED=$'\e[31mDENIED\e[0m'; fi
echo "== requests"
request tenant "a public name" http://www.example.com/
request tenant "a public name over TLS" https://www.example.com/
request tenant "the internal BI tool by its split-horizon name" http://bi-tool.example.com/
request tenant "the BI tool over TLS" https://bi-tool.example.com/
request tenant "the BI tool by IP" http://10.20.0.10/
request tenant "the BI tool with a public Host header (egressfw dials the public site instead)" http://10.20.0.10/ -H "Host: www.example.com"
request tenant "cloud metadata by IP" http://169.254.169.254/latest/meta-data/
request tenant "a name that resolves to the metadata address" http://metadata.example.com/
request tenant "a port that is neither intercepted nor allowed direct (reset by nftables)" http://198.51.100.10:53/
request host   "the BI tool from a process that is not a tenant (untouched)" http://bi-tool.example.com/

bi=$(grep -c '"ev":"http".*"local":"10.20.0.10:' "$DIR/$INT.events" || true)
md=$(grep -c '"ev":"http".*"local":"169.254.169.254:' "$DIR/$INT.events" || true)
echo
echo "== the internal servers' own request counts: BI tool $bi (the non-tenant's request only), metadata $md"
echo
echo "== egressfw status (the running daemon, over its root-only socket)"
"$BIN" status --config "$DIR/egressfw.toml" || true
echo "== done; removing namespaces, cgroup and files"

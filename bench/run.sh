#!/bin/sh
# bench/run.sh — the egressfw benchmark harness (sudo make bench; QUICK=1 for a smoke run).
# Installs what it needs from Debian, builds the bench tools, runs bench/cmd/benchrun,
# which writes bench/BENCHMARKS.md, bench/ratios.png and bench/results/.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces, nftables, cgroups): sudo make bench" >&2; exit 1; }

pkgs="haproxy nginx libnginx-mod-stream nftables iproute2 util-linux procps"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
	echo "bench: installing$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
	# The Debian packages start system services; the benchmark runs its own
	# instances in its own namespaces and needs none of them.
	for s in nginx haproxy; do systemctl stop "$s" 2>/dev/null || true; done
fi
[ -x bin/egressfw ] || { echo "bench: bin/egressfw missing (make build)" >&2; exit 1; }
mkdir -p bench/.bin
# bench/ is its own Go module (bench/go.mod: the chart's gonum.org/v1/plot stays out of
# egressfw's go.mod); it builds against this checkout through its replace directive.
(cd bench && "$GO" build -trimpath -o .bin/ ./cmd/...)
exec bench/.bin/benchrun -bin bench/.bin -egressfw bin/egressfw -conf bench/conf -out bench

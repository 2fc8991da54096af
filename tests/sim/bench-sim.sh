#!/bin/sh
# SPDX-License-Identifier: MIT
# Throughput of invited-sim under wrk (docs/simulator.md records the figures).
# Usage: bench-sim.sh PATH/TO/invited-sim [SECONDS [CONNECTIONS [WRK-THREADS [-- SIM-OPTIONS...]]]]
set -u
SIM=${1:?usage: bench-sim.sh PATH/TO/invited-sim [SECONDS [CONNECTIONS [WRK-THREADS [-- SIM-OPTIONS...]]]]}
SECS=${2:-10}
CONNS=${3:-100}
THREADS=${4:-1}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
command -v wrk >/dev/null 2>&1 || { echo "wrk not installed (apt-get install wrk)" >&2; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/sim-bench.XXXXXX") || exit 1
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$SIM" --port-file "$dir/port" "$@" 2>"$dir/stderr" &
pid=$!
i=0
while [ ! -s "$dir/port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$dir/port") || exit 1
SIM_TOKEN=$(curl -s -X POST "http://127.0.0.1:$port/t/oauth2/v2.0/token" \
	-d 'grant_type=client_credentials&client_id=bench&client_secret=x&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default' |
	sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
export SIM_TOKEN
# CPU time of the simulator (utime + stime, clock ticks) from /proc
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
req() { curl -s "http://127.0.0.1:$port/sim/stats" | sed -n 's/^{"requests":\([0-9]*\).*/\1/p'; }
cpu0=$(cpu) req0=$(req)
wrk -t"$THREADS" -c"$CONNS" -d"$SECS"s --latency -s "$here/wrk-invite.lua" "http://127.0.0.1:$port"
cpu1=$(cpu) req1=$(req)
echo "sim CPU: $(awk -v c="$((cpu1 - cpu0))" -v n="$((req1 - req0))" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { printf "%.1f s for %d requests = %.1f us/request\n", c / hz, n, n ? c / hz / n * 1e6 : 0 }')"
echo "sim stats: $(curl -s "http://127.0.0.1:$port/sim/stats")"

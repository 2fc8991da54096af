#!/bin/sh
# SPDX-License-Identifier: MIT
# The whole flow on one machine, no tenant needed: install what is missing,
# build, start the bundled Graph simulator and invited in a temporary
# directory, submit the example portal file, watch it, show the finished
# job and its per-row results, stop both.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
B=${BUILD_DIR:-build}
case $B in /*) ;; *) B="$(pwd)/$B" ;; esac
ROOT=$(pwd)
INVITED="$B/daemon/invited"
SIM="$B/tests/sim/invited-sim"
INVITECTL="$B/client/invitectl"
EXAMPLE="$ROOT/tests/fixtures/example-portal.csv"

dir=$(mktemp -d "${TMPDIR:-/tmp}/invited-demo.XXXXXX")
sim_pid= daemon_pid=
cleanup() {
	[ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
wait_for() { # wait_for WHAT COMMAND...: up to 10 s
	what=$1
	shift
	i=0
	until "$@" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && { echo "demo: timed out waiting for $what" >&2; exit 1; }
		sleep 0.05
	done
}

step "Starting the Graph simulator (127.0.0.1, 20 ms latency, two addresses it refuses)"
printf 'demo-secret\n' >"$dir/client-secret"
chmod 600 "$dir/client-secret"
"$SIM" --port 0 --port-file "$dir/sim.port" --record "$dir/record.jsonl" \
	--latency-ms 20 --reject guest0041@partner-a.example --reject guest0107@contoso-partner.example 2>"$dir/sim.log" &
sim_pid=$!
wait_for "the simulator" test -s "$dir/sim.port"
port=$(cat "$dir/sim.port")

cat >"$dir/invited.conf" <<CONF
[graph]
tenant = contoso.onmicrosoft.com
client_id = 00000000-0000-0000-0000-000000000000
client_secret_file = $dir/client-secret
authority_url = http://127.0.0.1:$port
graph_url = http://127.0.0.1:$port

[queue]
rate = 60
burst = 10
concurrency = 8

[daemon]
socket = $dir/invited.sock
database = $dir/invited.db
CONF

step "Starting invited (config: $dir/invited.conf)"
"$INVITED" -c "$dir/invited.conf" 2>"$dir/invited.log" &
daemon_pid=$!
export INVITED_SOCKET="$dir/invited.sock"
wait_for "invited" "$INVITECTL" status >/dev/null
"$INVITECTL" status

step "invitectl validate $(basename "$EXAMPLE")"
"$INVITECTL" validate "$EXAMPLE"

step "invitectl submit --name 'Demo partners' --watch"
set +e
"$INVITECTL" submit "$EXAMPLE" --name "Demo partners" --watch
rc=$?
set -e
echo "(exit code $rc: 1 means the job ended with failed rows)" >&2

step "invitectl jobs"
"$INVITECTL" jobs

job=$("$INVITECTL" --json jobs | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
step "invitectl show $job --state failed   (each failed row with Graph's reason)"
"$INVITECTL" show "$job" --state failed

step "invitectl show $job   (first rows)"
"$INVITECTL" show "$job" | head -n 18

step "invitectl results $job   (first lines of the results CSV)"
"$INVITECTL" results "$job" -o "$dir/results.csv"
head -n 4 "$dir/results.csv"
echo "... $(($(wc -l <"$dir/results.csv") - 1)) result rows" >&2

step "The simulator's record: $(wc -l <"$dir/record.jsonl") invitations accepted"
step "Stopping invited and the simulator"

#!/bin/sh
# SPDX-License-Identifier: MIT
# Smoke test of invited-sim: start it on 127.0.0.1 port 0, talk to it with
# curl, stop it with SIGTERM. TAP output. Usage: test-sim.sh PATH/TO/invited-sim
set -u

SIM=${1:?usage: test-sim.sh PATH/TO/invited-sim}
command -v curl >/dev/null 2>&1 || { echo "1..0 # SKIP curl not installed"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "1..0 # SKIP python3 not installed"; exit 77; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/sim-smoke.XXXXXX") || exit 1
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

n=0
failed=0
ok() { # ok CONDITION-EXIT-STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

# json FILE EXPR: evaluate a Python expression over the parsed JSON as `j`.
json() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" 2>/dev/null
}

# wait_for COMMAND...: retry for up to 10 s (a deadline, not a fixed sleep).
wait_for() {
	i=0
	while [ $i -lt 200 ]; do
		"$@" && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

"$SIM" --port 0 --port-file "$dir/port" --record "$dir/record.jsonl" \
	--tenant contoso.example --client-id app-1 --client-secret 's3cr&t=' \
	--reject blocked@example.com 2>"$dir/stderr" &
pid=$!

wait_for test -s "$dir/port"
ok $? "simulator wrote its port file"
port=$(cat "$dir/port" 2>/dev/null)
base="http://127.0.0.1:${port:-1}"

# post NAME URL CURL-ARGS...: status code to stdout, body in $dir/NAME
post() {
	name=$1 url=$2
	shift 2
	curl -s -o "$dir/$name" -w '%{http_code}' -X POST "$base$url" "$@"
}

code=$(post token /contoso.example/oauth2/v2.0/token \
	--data-urlencode client_id=app-1 \
	--data-urlencode scope=https://graph.microsoft.com/.default \
	--data-urlencode 'client_secret=s3cr&t=' \
	--data grant_type=client_credentials)
ok $([ "$code" = 200 ] && json "$dir/token" 'j["token_type"] == "Bearer" and j["expires_in"] == 3599 and len(j["access_token"]) > 20'; echo $?) \
	"token issued (HTTP $code)"
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$dir/token" 2>/dev/null)

code=$(post badsecret /contoso.example/oauth2/v2.0/token \
	--data 'client_id=app-1&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&client_secret=nope&grant_type=client_credentials')
ok $([ "$code" = 401 ] && json "$dir/badsecret" 'j["error"] == "invalid_client" and j["error_codes"] == [7000215]'; echo $?) \
	"wrong secret is invalid_client 7000215 (HTTP $code)"

invite='{"invitedUserEmailAddress":"Guest.One@Example.com","inviteRedirectUrl":"https://myapps.microsoft.com","invitedUserDisplayName":"Guest One","sendInvitationMessage":true}'
code=$(post invite /v1.0/invitations -H "Authorization: Bearer $token" \
	-H 'Content-Type: application/json' -H 'client-request-id: smoke-1' -D "$dir/headers" -d "$invite")
ok $([ "$code" = 201 ] && json "$dir/invite" 'j["status"] == "PendingAcceptance" and j["invitedUserEmailAddress"] == "Guest.One@Example.com" and j["sendInvitationMessage"] is True and len(j["invitedUser"]["id"]) == 36'; echo $?) \
	"invitation created (HTTP $code)"
grep -qi '^client-request-id: smoke-1' "$dir/headers" && grep -qi '^request-id: ' "$dir/headers"
ok $? "request-id and client-request-id headers"

code=$(post noauth /v1.0/invitations -H 'Content-Type: application/json' -d "$invite")
ok $([ "$code" = 401 ] && json "$dir/noauth" 'j["error"]["code"] == "InvalidAuthenticationToken" and "request-id" in j["error"]["innerError"]'; echo $?) \
	"no token: 401 InvalidAuthenticationToken (HTTP $code)"

code=$(post badauth /v1.0/invitations -H 'Authorization: Bearer not-a-token' \
	-H 'Content-Type: application/json' -d "$invite")
ok $([ "$code" = 401 ] && json "$dir/badauth" 'j["error"]["code"] == "InvalidAuthenticationToken"'; echo $?) \
	"bad token: 401 (HTTP $code)"

code=$(post invalid /v1.0/invitations -H "Authorization: Bearer $token" \
	-H 'Content-Type: application/json' \
	-d '{"invitedUserEmailAddress":"first+tag@example.com","inviteRedirectUrl":"https://myapps.microsoft.com"}')
ok $([ "$code" = 400 ] && json "$dir/invalid" 'j["error"]["code"] == "BadRequest"'; echo $?) \
	"invalid address: 400 BadRequest (HTTP $code)"

code=$(post rejected /v1.0/invitations -H "Authorization: Bearer $token" \
	-H 'Content-Type: application/json' \
	-d '{"invitedUserEmailAddress":"Blocked@example.com","inviteRedirectUrl":"https://myapps.microsoft.com"}')
ok $([ "$code" = 400 ]; echo $?) "--reject address: 400 (HTTP $code)"

code=$(curl -s -o "$dir/stats" -w '%{http_code}' "$base/sim/stats")
ok $([ "$code" = 200 ] && json "$dir/stats" 'j["invitations_accepted"] == 1 and j["tokens_issued"] == 1 and j["status"]["201"] == 1 and j["status"]["401"] == 3 and j["status"]["400"] == 2 and j["in_flight"] == 0'; echo $?) \
	"/sim/stats counts (HTTP $code)"

kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do
	sleep 0.05
	i=$((i + 1))
done
wait "$pid"
status=$?
pid=
ok $status "exits 0 on SIGTERM"

json "$dir/record.jsonl" 'j["address"] == "Guest.One@Example.com" and j["display_name"] == "Guest One" and j["send"] is True and j["via"] == "single" and j["message"] is None and len(j["user_id"]) == 36'
ok $? "record holds the accepted invitation"
[ "$(wc -l <"$dir/record.jsonl")" -eq 1 ]
ok $? "record holds exactly one line"
grep -q 'listening on 127.0.0.1:' "$dir/stderr"
ok $? "logged the listening line"
! grep -Eq 'runtime error|AddressSanitizer|LeakSanitizer|libmicrohttpd' "$dir/stderr"
ok $? "no sanitizer or libmicrohttpd complaints on stderr"

echo "1..$n"
if [ $failed -ne 0 ]; then
	sed 's/^/# /' "$dir/stderr"
	exit 1
fi
exit 0

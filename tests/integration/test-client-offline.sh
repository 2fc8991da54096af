#!/bin/sh
# SPDX-License-Identifier: MIT
# invitectl with no daemon: what must work (template, help, version) and what
# must fail with the right exit code (SPEC §3) before any daemon is involved.
# Usage: test-client-offline.sh PATH-TO-INVITECTL   (TAP on stdout)
set -u

INVITECTL=${1:-${INVITECTL:?usage: $0 PATH-TO-INVITECTL (or set \$INVITECTL)}}
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
# Never reach a real daemon from a test: every run gets a socket that is not there.
nosock="$tmp/no-such-dir/invited.sock"
unset INVITED_SOCKET NO_COLOR
export LC_ALL=C

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	sed 's/^/#   /' "$tmp/out" "$tmp/err"
}

# run WANT-EXIT DESCRIPTION ARGS...: output in $tmp/out and $tmp/err
run() {
	want=$1 desc=$2
	shift 2
	"$INVITECTL" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	got=$?
	if [ "$got" -eq "$want" ]; then ok "$desc (exit $want)"; else
		echo "#   got exit $got" >>"$tmp/err"
		not_ok "$desc (exit $want)"
	fi
}

# check DESCRIPTION FILE PATTERN: FILE has a line matching the grep -E PATTERN
check() {
	if grep -Eq -- "$3" "$2"; then ok "$1"; else not_ok "$1"; fi
}

# --- what works without a daemon
run 0 "--version" --version
check "--version names the program" "$tmp/out" '^invitectl [0-9]+\.[0-9]+'
run 0 "--help" --help
check "--help lists the commands" "$tmp/out" '^  submit '
run 0 "help show" help show
check "help show prints the show usage" "$tmp/out" '^Usage: invitectl show'
for cmd in template validate submit jobs show results watch wait cancel pause resume \
	retry stats status; do
	run 0 "$cmd --help" "$cmd" --help
	check "$cmd --help prints its usage" "$tmp/out" "^Usage: invitectl $cmd"
done

run 0 "template" -s "$nosock" template
cp "$tmp/out" "$tmp/template.csv"
check "template starts with the version row" "$tmp/template.csv" '^version:v1\.0'
check "template header names [inviteeEmail]" "$tmp/template.csv" '\[inviteeEmail\]'
check "template header names [inviteRedirectURL]" "$tmp/template.csv" '\[inviteRedirectURL\]'
check "template has an Example: row" "$tmp/template.csv" '^"?Example:'
# Parse it as RFC 4180 CSV: every record has as many fields as the header.
if awk -v RS='\n' '
	function nfields(s,   i, c, q, f) {
		q = 0; f = 1
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (c == "\"") q = !q
			else if (c == "," && !q) f++
		}
		if (q) bad = 1
		return f
	}
	{ sub(/\r$/, "") }
	/^version:/ { next }
	/^$/ { next }
	{ f = nfields($0); if (!want) want = f; else if (f != want) bad = 1; rec++ }
	END { exit (bad || rec < 2 || want < 2) }
' "$tmp/template.csv"; then
	ok "template parses as CSV: header and example have the same field count"
else
	not_ok "template parses as CSV: header and example have the same field count"
fi

# --- usage errors: 64, before any connection is tried
run 64 "no command" -s "$nosock"
run 64 "unknown command" -s "$nosock" frobnicate
check "unknown command is named" "$tmp/err" "unknown command 'frobnicate'"
run 64 "unknown global option" -s "$nosock" --frobnicate jobs
run 64 "unknown command option" -s "$nosock" jobs --frobnicate
run 64 "-s without a path" -s
run 64 "show without JOB" -s "$nosock" show
run 64 "show with a non-numeric JOB" -s "$nosock" show abc
check "a bad JOB is explained" "$tmp/err" "invalid job id 'abc'"
run 64 "show with JOB 0" -s "$nosock" show 0
run 64 "show with a negative JOB" -s "$nosock" show -- -3
run 64 "show with JOB 7x" -s "$nosock" show 7x
run 64 "show with a JOB beyond 64 bits" -s "$nosock" show 99999999999999999999
run 64 "show with two JOBs" -s "$nosock" show 1 2
run 64 "show --state with a bad state" -s "$nosock" show --state bogus 7
run 64 "wait without JOB" -s "$nosock" wait
run 64 "cancel with a bad JOB" -s "$nosock" cancel 1.5
run 64 "results -o without FILE" -s "$nosock" results 7 -o
run 64 "jobs with an operand" -s "$nosock" jobs 7
run 64 "submit without FILE" -s "$nosock" submit
run 64 "submit --wait --watch" -s "$nosock" submit --wait --watch "$tmp/template.csv"
run 64 "validate --wait" -s "$nosock" validate --wait "$tmp/template.csv"
run 64 "stats --prometheus --json" -s "$nosock" stats --prometheus --json

# --- input that cannot be read: 66, before any connection is tried
run 66 "validate of a missing file" -s "$nosock" validate "$tmp/missing.csv"
check "the missing file is named" "$tmp/err" "cannot read $tmp/missing.csv: "
run 66 "submit of a missing file" -s "$nosock" submit "$tmp/missing.csv"
run 66 "validate of a directory" -s "$nosock" validate "$tmp"

# --- no daemon: 69 with a clear message
run 69 "socket that does not exist" -s "$nosock" status
check "unreachable names the socket" "$tmp/err" "^invitectl: cannot reach invited at $nosock: "
run 69 "socket that does not exist, --json after the command" -s "$nosock" jobs --json
check "no daemon: a hint to start it" "$tmp/err" "^invitectl: hint: is invited running\? try: systemctl start invited.socket"
run 69 "-s after the command" status -s "$nosock"
check "-s after the command is the socket used" "$tmp/err" "at $nosock: "
run 69 "--socket=PATH after the command" jobs --json --socket="$nosock"
check "--socket= after the command is the socket used" "$tmp/err" "at $nosock: "

# --- validate needs no daemon (SPEC §3): the same reader as the daemon's
run 65 "validate of the untouched template with no daemon" -s "$nosock" validate "$tmp/template.csv"
check "the template is 'no guests in the file'" "$tmp/err" "template.csv:3: no guests in the file"
check "validate says nothing of the missing daemon" "$tmp/err" "^invitectl: [^:]*template.csv: 1 problem$"
if grep -q "cannot reach" "$tmp/err"; then not_ok "validate does not try to report the daemon"; else
	ok "validate does not try to report the daemon"; fi
sed 's/^Example:.*$/guest@partner.example,https:\/\/myapplications.microsoft.com,true,/' \
	"$tmp/template.csv" >"$tmp/good.csv"
run 0 "validate of a good file with no daemon" -s "$nosock" validate "$tmp/good.csv"
check "validate counts its row" "$tmp/out" "good.csv: 1 row, valid"
run 0 "validate --json of a good file" -s "$nosock" validate --json "$tmp/good.csv"
check "validate --json: valid" "$tmp/out" '^\{"valid":true,"rows":1,"errors":\[\],"error_count":0\}$'
{ cat "$tmp/good.csv"; echo "not-an-email,https://x.example"; echo "GUEST@partner.example,"; } \
	>"$tmp/bad.csv"
run 65 "validate of a bad file with no daemon" -s "$nosock" validate "$tmp/bad.csv"
check "bad.csv: the invalid email at its line" "$tmp/err" "^$tmp/bad.csv:4: invalid email 'not-an-email'"
check "bad.csv: a duplicate, case-insensitive" "$tmp/err" "^$tmp/bad.csv:5: duplicate email 'GUEST@partner.example' \(also on line 3\)"
run 65 "validate --json of a bad file" -s "$nosock" validate --json "$tmp/bad.csv"
check "validate --json: invalid, two problems" "$tmp/out" '^\{"valid":false,"rows":3,"errors":\[\{"line":4,.*"error_count":2\}$'
: >"$tmp/empty.csv"
run 65 "validate of an empty file" -s "$nosock" validate "$tmp/empty.csv"
run 64 "validate --language checked in invitectl" -s "$nosock" validate --language 'en US' "$tmp/good.csv"
check "the bad language is named" "$tmp/err" "invalid language 'en US'"
run 64 "submit --language checked before connecting" -s "$nosock" submit --language 'x' "$tmp/good.csv"
: >"$tmp/not-a-socket"
run 69 "a path that is not a socket" -s "$tmp/not-a-socket" jobs
INVITED_SOCKET="$nosock" "$INVITECTL" status >"$tmp/out" 2>"$tmp/err"
got=$?
if [ "$got" -eq 69 ] && grep -q "at $nosock:" "$tmp/err"; then
	ok "\$INVITED_SOCKET is used (exit 69)"
else
	echo "#   got exit $got" >>"$tmp/err"
	not_ok "\$INVITED_SOCKET is used (exit 69)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]

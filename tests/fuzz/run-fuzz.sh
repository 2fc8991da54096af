#!/bin/sh
# SPDX-License-Identifier: MIT
# Run one libFuzzer target for a bounded time: run-fuzz.sh EXE SEEDS REGRESS
# FUZZ_SECONDS (default 30) bounds the run; new inputs go to a scratch corpus
# under the build directory (the committed seeds are never written), and a
# crash leaves its input in $FUZZ_ARTIFACTS (default: the build directory's
# fuzz-artifacts/) to be copied into tests/fuzz/regress/TARGET/.
# Prints TAP: one point, with libFuzzer's last stats line as a comment.
set -u
exe=$1 seeds=$2 regress=$3
name=$(basename "$exe")
seconds=${FUZZ_SECONDS:-30}
work=${FUZZ_WORK:-$(dirname "$exe")/fuzz-work}/$name
artifacts=${FUZZ_ARTIFACTS:-$(dirname "$exe")/fuzz-artifacts}/$name
mkdir -p "$work" "$artifacts"
log=$work.log
dirs="$work $seeds"
[ -d "$regress" ] && dirs="$dirs $regress"

# -rss_limit_mb and -timeout make a leak or a hang a finding, not a stuck CI
# shellcheck disable=SC2086
"$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=16384 \
	-print_final_stats=1 -artifact_prefix="$artifacts/" $dirs >"$log" 2>&1
rc=$?
stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "1..1"
if [ "$rc" -eq 0 ]; then
	echo "ok 1 - $name: ${execs:-?} runs in ${seconds}s, no crash"
	echo "# $stats"
else
	echo "not ok 1 - $name: libFuzzer exited $rc"
	grep -E 'ERROR|runtime error|invariant broken|SUMMARY|Test unit written|^ +#[0-9]+ ' "$log" |
		head -n 40 | sed 's/^/#   /'
fi
exit 0

#!/usr/bin/env bash
# fuzz.sh [SECONDS [TARGET...]] - the long libFuzzer run of issue 13: the targets of
# tests/fuzz/ (default all seven: SIP parser, whole stage chain, Digest parameters, Refer-To
# rewrite, configuration and users-file loaders, Redis replies, DNS answers) for SECONDS each
# (default 3600: an hour per target), two at a time, at nice 19 so it can run beside other
# work. Builds its own clang/ASan tree (build-fuzz-bench/), keeps the corpora there between
# runs, writes this run's summary to bench/report/fuzz.txt and updates
# bench/report/fuzz-runs.tsv, which keeps each target's last run of SECONDS >= 3600 (so an
# hour per target can be reached a few targets at a time on a two-core box). Exit status 1
# when a target found a crash (see build-fuzz-bench/fuzz-artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3600}
shift || true
case $SECS in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$SECS'" >&2; exit 2 ;; esac
ALL=(chain sip_parse digest_params referto cfg redis_reply dns_answer)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
	[[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: no fuzz target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
done
B=build-fuzz-bench
CC=clang cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Asan -DREFEREE_FUZZ=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
nice -n 19 cmake --build "$B" -j2 --target "${TARGETS[@]/#/fuzz_}"
mkdir -p bench/report
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "${REFEREE_COMMIT:-?}")
start=$(date -u +%s)
rc=0
FUZZ_NICE=19 tests/fuzz/run.sh "$B" "$SECS" "${TARGETS[@]}" >"$B/summary.txt" 2>&1 || rc=$?
end=$(date -u +%s)
{
	echo "bench/fuzz.sh $SECS ${TARGETS[*]} at $commit, $(date -u -d "@$start" '+%Y-%m-%d %H:%M') UTC,"
	echo "$SECS s per target, two at a time: $(((end - start) / 60)) min wall in all, nice 19"
	echo
	cat "$B/summary.txt"
} | tee bench/report/fuzz.txt
# fuzz-runs.tsv: one line per target, its last run of an hour or more that went the
# whole time (libFuzzer's "Done N runs in S second(s)"; a run that found a crash stopped
# there and is not one): date, commit, seconds, executions, exec/s, edges, corpus, crashes
if [ "$SECS" -ge 3600 ]; then
	runs=bench/report/fuzz-runs.tsv
	[ -f "$runs" ] || printf 'target\tdate_utc\tcommit\tseconds\texecutions\texec_per_s\tedges\tcorpus\tcrashes\n' >"$runs"
	day=$(date -u -d "@$start" '+%Y-%m-%d')
	awk 'NR > 1 && NF == 6' "$B/summary.txt" | while read -r t ex sp cov corp cr; do
		ran=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$B/fuzz-$t.log" | tail -n 1)
		if [ "$cr" != 0 ] || [ -z "$ran" ] || [ "$ran" -lt "$SECS" ]; then
			echo "fuzz.sh: $t did not run the whole $SECS s (crashes: $cr): not recorded in $runs" >&2
			continue
		fi
		grep -v "^$t	" "$runs" >"$runs.new" || true
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$day" "$commit" "$ran" "$ex" "$sp" "$cov" "$corp" "$cr" >>"$runs.new"
		mv "$runs.new" "$runs"
	done
fi
exit $rc

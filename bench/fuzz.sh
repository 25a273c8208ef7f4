#!/usr/bin/env bash
# fuzz.sh [SECONDS] - the long libFuzzer run of issue 13: every target of tests/fuzz/
# (SIP parser, whole stage chain, Digest parameters, Refer-To rewrite, configuration and
# users-file loaders, Redis replies) for SECONDS each (default 3600: an hour per target),
# two at a time, at nice 19 so it can run beside other work. Builds its own clang/ASan
# tree (build-fuzz-bench/), keeps the corpora there between runs, and writes the summary
# (executions, exec/s, coverage, corpus, crashes per target, and how long it ran) to
# bench/report/fuzz.txt. Exit status 1 when a target found a crash (see
# build-fuzz-bench/fuzz-artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3600}
B=build-fuzz-bench
CC=clang cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Asan -DREFEREE_FUZZ=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
nice -n 19 cmake --build "$B" -j2 --target fuzz_sip_parse fuzz_chain fuzz_digest_params fuzz_referto fuzz_cfg fuzz_redis_reply
mkdir -p bench/report
start=$(date -u +%s)
rc=0
FUZZ_NICE=19 tests/fuzz/run.sh "$B" "$SECS" >"$B/summary.txt" 2>&1 || rc=$?
end=$(date -u +%s)
{
	echo "bench/fuzz.sh $SECS at $(git rev-parse --short HEAD 2>/dev/null || echo "${REFEREE_COMMIT:-?}"), $(date -u -d "@$start" '+%Y-%m-%d %H:%M') UTC,"
	echo "$SECS s per target, two at a time: $(((end - start) / 60)) min wall in all, nice 19"
	echo
	cat "$B/summary.txt"
} | tee bench/report/fuzz.txt
exit $rc

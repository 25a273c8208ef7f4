#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS [TARGET...] - seed and run referee's libFuzzer targets
# (tests/fuzz/fuzz_*.c, built in BUILD_DIR with -DREFEREE_FUZZ=ON by clang), each for
# SECONDS, two at a time (the box has two cores). Corpora live in BUILD_DIR/corpus/<target>
# and grow from run to run; crashes go to BUILD_DIR/fuzz-artifacts/. Prints one line per
# target (executions, coverage, corpus, crashes) and fails when any target found a crash.
# Used by tests/run-all.sh (FUZZ_SECONDS) and bench/fuzz.sh (an hour).
set -uo pipefail
B=$(cd "$1" && pwd)
SECONDS_EACH=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${REFEREE_SHARED_DIR:-$HERE/../../../shared}
ALL=(chain sip_parse digest_params referto cfg redis_reply dns_answer)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
mkdir -p "$B/fuzz-artifacts"

# seed - a small corpus per target the first time (the fuzzer grows it after).
seed() {
	local t=$1 d=$B/corpus/$1 f i=0
	mkdir -p "$d"
	[ -n "$(ls -A "$d" 2>/dev/null)" ] && return 0
	case $t in
	sip_parse)
		cp "$SHARED"/testdata/rfc4475/*.dat "$SHARED"/testdata/rfc5118/*.dat "$d"/ 2>/dev/null || true ;;
	chain)
		# byte 0: source (bits 0-1) and "sign it" (bit 2, bit 3: SHA-256), then the datagram
		# regressions found by fuzzing keep their flag byte (seeds/chain/*.bin)
		cp "$HERE"/seeds/chain/*.bin "$d"/ 2>/dev/null || true
		for f in "$SHARED"/testdata/rfc4475/*.dat "$SHARED"/testdata/rfc5118/*.dat "$HERE"/seeds/chain/*.sip; do
			[ -f "$f" ] || continue
			i=$((i + 1))
			{ printf '\000'; cat "$f"; } >"$d/plain-$i"
			{ printf '\004'; cat "$f"; } >"$d/signed-$i"
			{ printf '\015'; cat "$f"; } >"$d/signed-sha-$i"
		done ;;
	cfg)
		for f in "$HERE"/../../packaging/referee.yaml "$HERE"/../../packaging/etc/referee.yaml; do
			i=$((i + 1)); { printf '\000'; cat "$f"; } >"$d/cfg-$i"
		done
		{ printf '\001'; cat "$HERE"/../../packaging/users.yaml; } >"$d/users-1" ;;
	*)
		cp "$HERE"/seeds/"$t"/* "$d"/ 2>/dev/null || true ;;
	esac
}

run_one() {
	local t=$1
	nice -n "${FUZZ_NICE:-0}" "$B/tests/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$B/fuzz-artifacts/$t-" "$B/corpus/$t" >"$B/fuzz-$t.log" 2>&1
}

rc=0
for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
	pids=()
	for t in "${TARGETS[@]:i:2}"; do
		[ -x "$B/tests/fuzz_$t" ] || { echo "FAIL fuzz_$t not built in $B"; rc=1; continue; }
		seed "$t"
		run_one "$t" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
done
printf '%-14s %12s %8s %8s %8s %s\n' target executions exec/s cov corpus crashes
for t in "${TARGETS[@]}"; do
	log=$B/fuzz-$t.log
	[ -f "$log" ] || continue
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
	corp=$(find "$B/corpus/$t" -type f | wc -l)
	# slow-unit-* files are reports of a slow input on a loaded machine, not findings
	crashes=$(find "$B/fuzz-artifacts" -type f \( -name "$t-crash-*" -o -name "$t-leak-*" -o -name "$t-oom-*" \
		-o -name "$t-timeout-*" \) | wc -l)
	printf '%-14s %12s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "$corp" "$crashes"
	[ "$crashes" = 0 ] || { rc=1; grep -E 'ERROR|SUMMARY' "$log" | head -n 3; }
done
exit $rc

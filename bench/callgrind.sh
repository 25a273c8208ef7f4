#!/usr/bin/env bash
# callgrind.sh - instructions per call of the shipped configuration, counted by
# valgrind's callgrind. Instruction counts do not depend on what else the
# machine runs (two cores shared with other work make CPU seconds noisy), so
# this is the figure to compare two commits by; bench/run.sh stays the one for
# CPU time, latency and the comparison with Kamailio and the kernel's floor.
#
#   bench/callgrind.sh SCENARIO [COUNT [RATE]]
#     SCENARIO  options | call | invite | invite-redis   (the configs of bench/lib/referee_conf.sh;
#               invite-redis starts its own redis-server on loopback, users loaded as bench/run.sh
#               does; Redis's own instructions are not counted)
#     COUNT     calls SIPp places (default 1000), RATE per second (default 100)
#   REFEREE_BIN=path  the binary to measure (default: build-callgrind/referee,
#                     built RelWithDebInfo from this tree)
#   KEEP=1            keep the work folder (callgrind.out.* for callgrind_annotate)
#
# Prints "SCENARIO calls=N ok=N instr_total=N instr_per_call=N" and the top
# functions by their own instructions (start-up included there). Start-up and
# the timers of an idle proxy are subtracted: a first run places no calls for
# as long as the loaded run lasts. Loopback only; every process is bounded by timeout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib/common.sh
. "$ROOT/bench/lib/common.sh"
# shellcheck source=bench/lib/referee_conf.sh
. "$ROOT/bench/lib/referee_conf.sh"

usage() { echo "usage: bench/callgrind.sh options|call|invite|invite-redis [COUNT [RATE]]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 3 ] || usage
SCEN=$1 COUNT=${2:-1000} RATE=${3:-100}
case "$SCEN" in options | call | invite | invite-redis) ;; *) usage ;; esac
[[ $COUNT =~ ^[1-9][0-9]*$ && $RATE =~ ^[1-9][0-9]*$ ]] || { echo "callgrind.sh: COUNT and RATE must be positive integers" >&2; exit 2; }
((COUNT <= 100000 && RATE <= 2000)) || { echo "callgrind.sh: at most 100000 calls at 2000/s (valgrind runs ~50x slower)" >&2; exit 2; }
for c in valgrind callgrind_annotate sipp timeout python3 ss; do
	command -v "$c" >/dev/null || { echo "callgrind.sh: '$c' not installed (packaging/install-deps.sh --bench)" >&2; exit 2; }
done
if [ "$SCEN" = invite-redis ]; then
	for c in redis-server redis-cli; do
		command -v "$c" >/dev/null || { echo "callgrind.sh: '$c' not installed (packaging/install-deps.sh --bench)" >&2; exit 2; }
	done
fi
SHARED=${REFEREE_SHARED_DIR:-$ROOT/../shared}
[ -d "$SHARED/bench-reference" ] || { echo "callgrind.sh: no bench reference at $SHARED/bench-reference (set REFEREE_SHARED_DIR)" >&2; exit 2; }

BIN=${REFEREE_BIN:-}
if [ -z "$BIN" ]; then
	cmake -S "$ROOT" -B "$ROOT/build-callgrind" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$ROOT/build-callgrind" -j"$(nproc)" --target referee >/dev/null
	BIN=$ROOT/build-callgrind/referee
fi
[ -x "$BIN" ] || { echo "callgrind.sh: no referee binary at $BIN" >&2; exit 2; }

WORK=$(mktemp -d /tmp/referee-callgrind.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "${KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

REF=$WORK/ref
cp -r "$SHARED/bench-reference" "$REF"
"$REF/gen_data.sh" >/dev/null
referee_users_yaml "$REF/data/users.csv" "$WORK/users.yaml"
if [ "$SCEN" = invite-redis ]; then
	REDIS_PORT=$(bench_pick_tcp_port 26379)
	export REDIS_PORT
	timeout $((2 * COUNT / RATE + 600)) redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
		--dir "$WORK" >"$WORK/redis.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
	referee_redis_users "$REF/data/users.csv" "$WORK/redis_users.txt"
	redis-cli -p "$REDIS_PORT" <"$WORK/redis_users.txt" >/dev/null || { echo "callgrind.sh: loading users into Redis failed" >&2; exit 1; }
fi

# run_one NAME CALLS: referee under callgrind, CALLS calls through it (0 = idle for as long);
# prints "total_instructions successful_calls".
run_one() {
	local name=$1 calls=$2 port sink xml inf=() ok=0
	port=$(bench_pick_port 25060) sink=$(bench_pick_port 25070)
	mkdir -p "$WORK/$name"
	referee_conf "$SCEN" "$WORK/$name/referee.yaml" "$port" "$sink" "$WORK"
	case "$SCEN" in
		options) xml=$REF/sipp/uac_options.xml ;;
		call) xml=$REF/sipp/uac_call.xml inf=(-inf "$REF/sipp/users_call.csv") ;;
		invite | invite-redis) xml=$REF/sipp/uac_invite_auth.xml inf=(-inf "$REF/sipp/users_invite.csv") ;;
	esac
	local sink_pid=""
	if [ "$SCEN" != options ]; then
		timeout $((calls / RATE + 120)) sipp -sf "$REF/sipp/uas_sink.xml" -i 127.0.0.1 -p "$sink" -nostdin \
			>/dev/null 2>&1 </dev/null &
		sink_pid=$!
		PIDS+=("$sink_pid")
	fi
	timeout $((calls / RATE + 180)) valgrind --tool=callgrind --callgrind-out-file="$WORK/$name/callgrind.out" \
		"$BIN" -c "$WORK/$name/referee.yaml" >"$WORK/$name/referee.log" 2>&1 &
	local vg=$!
	PIDS+=("$vg")
	bench_wait_port "$port" 60 "$vg" || { tail -n 20 "$WORK/$name/referee.log" >&2; echo "callgrind.sh: referee did not start" >&2; exit 1; }
	if ((calls == 0)); then
		sleep $((COUNT / RATE + 1))
	else
		(cd "$WORK/$name" && timeout $((calls / RATE + 120)) sipp "127.0.0.1:$port" -sf "$xml" "${inf[@]}" \
			-i 127.0.0.1 -p "$(bench_pick_port 25080)" -r "$RATE" -m "$calls" -nostdin \
			-trace_stat -stf stat.csv -fd 1 >/dev/null 2>&1 </dev/null) || true
		ok=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "SuccessfulCall(C)") c = i; next }
			{ v = $c } END { print v + 0 }' "$WORK/$name/stat.csv" 2>/dev/null || echo 0)
	fi
	kill -TERM "$vg"
	wait "$vg" || true
	if [ -n "$sink_pid" ]; then kill -TERM "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
	local total
	total=$(awk '/^(summary|totals):/ { print $2; exit }' "$WORK/$name/callgrind.out")
	echo "$total $ok"
}

read -r base _ < <(run_one idle 0)
[[ ${base:-} =~ ^[0-9]+$ ]] || { echo "callgrind.sh: the idle run gave no instruction count (KEEP=1 keeps its log)" >&2; exit 1; }
read -r total ok < <(run_one load "$COUNT")
[[ ${total:-} =~ ^[0-9]+$ && ${ok:-} =~ ^[0-9]+$ ]] || { echo "callgrind.sh: the loaded run gave no instruction count (KEEP=1 keeps its log)" >&2; exit 1; }
# the loaded run lasts COUNT/RATE s plus SIPp's start (the idle run sleeps one more second)
((ok > 0)) || { echo "callgrind.sh: no call succeeded (logs in $WORK; KEEP=1 keeps them)" >&2; KEEP=1; exit 1; }
per=$(((total - base) / ok))
echo "$SCEN calls=$COUNT ok=$ok instr_total=$((total - base)) instr_per_call=$per (an idle run's $base subtracted)"
callgrind_annotate "$WORK/load/callgrind.out" 2>/dev/null |
	awk '/^-+$/ { s++; next } s >= 3 && NF && n < 25 { print; n++ }'

#!/usr/bin/env bash
# run.sh - referee vs. Kamailio 5.6 side by side: every scenario, one command, one report.
#
# usage: bench/run.sh [options|call|invite|invite-redis|refer|transfer|all]...   (default: call)
#   all = options call invite invite-redis refer transfer, and the report goes to bench/report/
#
# For each scenario: starts the reference Kamailio (a writable copy of the shared bench reference,
# its start_kamailio.sh, 2 children) and referee (2 receivers, 2 workers, the equivalent config of
# bench/lib/referee_conf.sh), both relaying to the same SIPp sink on 127.0.0.1:$SINK_PORT; then per
# offered rate one bounded load run per proxy, interleaved (bench/lib/load.sh: 1..CLIENTS SIPp
# clients in parallel, proxy CPU from /proc/PID/stat and schedstat over one window, the reference's
# verdict, p50/p99 latency from SIPp -trace_rtt). A proxy's sweep stops at its first rate that does
# not PASS. At the end: a Markdown report (bench/lib/report.awk) and a PNG plot of CPU per call
# against offered rate (bench/plot.sh, gnuplot).
#   options       uac_options.xml: OPTIONS answered 200 by the proxy (CLIENTS 2 by default)
#   call          uac_call.xml: INVITE/200/ACK/BYE/200 relayed, no auth (Kamailio -A WITH_NOAUTH)
#   invite        uac_invite_auth.xml: 407, authenticated INVITE, permission check, call
#   invite-redis  the same, users in Redis: referee store.backend redis (referee:user:<id>, SPEC §6)
#                 vs Kamailio --redis (HMGET per request); Redis CPU reported as backend CPU
#   refer         uac_refer_auth.xml: 407, authenticated REFER, Refer-To rewrite, 202
#   transfer      bench/sipp/refer_transfer.xml: authenticated REFER + the transferee's INVITE
#                 authorized by the grant alone, call, BYE (referee only: Kamailio has no grants)
#
# environment (all optional)
#   DURATION=8             seconds of load per run (every SIPp client: -m RATE*DURATION, `timeout`)
#   REPEATS=1              interleaved repetitions per rate (the report shows the mean)
#   OPTIONS_RATES="1000 4000 16000 32000 48000"  CALL_RATES="500 1000 2000 4000"
#   INVITE_RATES="500 1000 2000 4000"  INVITE_REDIS_RATES, REFER_RATES="1000 2000 4000"
#   TRANSFER_RATES="500 1000 2000"    offered calls/s swept per scenario
#   CLIENTS                SIPp clients per run for every scenario (default: 2 for options, else 1);
#                          OPTIONS_CLIENTS, CALL_CLIENTS, ... per scenario
#   REFEREE_BIN            referee binary; default: build HEAD (RelWithDebInfo) in <repo>/build-bench-head
#                          from `git archive HEAD` (uncommitted edits are not measured);
#                          REFEREE_SOURCE=tree builds the work tree in <repo>/build-bench instead
#   REFEREE_SHARED_DIR     folder holding bench-reference/ (default <repo>/../shared)
#   BENCH_WORK             work folder (default mktemp -d); run folders in $BENCH_WORK/results
#   REPORT_DIR             where report.md, cpu_per_call.png, summary.tsv, commands.txt are copied
#                          (default bench/report for `all`, none otherwise)
#   REF_PORT=5075 KAM_PORT=5070 SINK_PORT=5080 UAC_PORT=5060 REDIS_PORT=6379 (busy: a free one)
#   BENCH_CALL_TRUSTED=1   call/options: 127.0.0.1/32 in referee's trusted list
#   REFEREE_INLINE=0       referee without threads.inline_receive (default: on, workers read their
#                          own sockets like Kamailio's children; needed for binaries older than it)
#   TIMEOUT_PAD=40 IDLE_S=1 SIPP_BUF=4194304
#   PROXIES="referee kamailio"   which systems to measure
# Output: the report on stdout and in $BENCH_WORK/report.md; every command is printed and kept in
# $BENCH_WORK/commands.txt, each run folder has its command.txt.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail
BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_SRC/.." && pwd)
# shellcheck source=lib/common.sh
. "$BENCH_SRC/lib/common.sh"
# shellcheck source=lib/referee_conf.sh
. "$BENCH_SRC/lib/referee_conf.sh"
# shellcheck source=lib/load.sh
. "$BENCH_SRC/lib/load.sh"

ALL_SCENARIOS=(options call invite invite-redis refer transfer)
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(call)
IS_ALL=0
if [ "${SCENARIOS[0]}" = all ]; then SCENARIOS=("${ALL_SCENARIOS[@]}"); IS_ALL=1; fi
for s in "${SCENARIOS[@]}"; do
	case "$s" in
		options | call | invite | invite-redis | refer | transfer) ;;
		-h | --help) sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) bench_die "unknown scenario '$s' (options|call|invite|invite-redis|refer|transfer|all)" ;;
	esac
done

DURATION=${DURATION:-8}
REPEATS=${REPEATS:-1}
OPTIONS_RATES=${OPTIONS_RATES:-"1000 4000 16000 32000 48000"}
CALL_RATES=${CALL_RATES:-"500 1000 2000 4000"}
INVITE_RATES=${INVITE_RATES:-"500 1000 2000 4000"}
INVITE_REDIS_RATES=${INVITE_REDIS_RATES:-"1000 2000 4000"}
REFER_RATES=${REFER_RATES:-"1000 2000 4000"}
TRANSFER_RATES=${TRANSFER_RATES:-"500 1000 2000"}
export TIMEOUT_PAD=${TIMEOUT_PAD:-40}
IDLE_S=${IDLE_S:-1}
SIPP_BUF=${SIPP_BUF:-4194304}
PROXIES=${PROXIES:-"referee kamailio"}
[[ $DURATION =~ ^[1-9][0-9]*$ && $REPEATS =~ ^[1-9][0-9]*$ ]] || bench_die "DURATION and REPEATS must be positive integers"
SHARED=${REFEREE_SHARED_DIR:-$REPO/../shared}
[ -d "$SHARED/bench-reference" ] || bench_die "no bench reference at $SHARED/bench-reference (set REFEREE_SHARED_DIR)"
need=(sipp kamailio perl python3 ss awk timeout git)
[[ " ${SCENARIOS[*]} " == *" invite-redis "* ]] && need+=(redis-server redis-cli)
for c in "${need[@]}"; do
	command -v "$c" >/dev/null || bench_die "'$c' not installed (packaging/install-deps.sh --bench)"
done
command -v gnuplot >/dev/null || bench_log "WARNING: gnuplot not installed (packaging/install-deps.sh --bench): no plot"

BENCH_WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/referee-bench.XXXXXX")}
mkdir -p "$BENCH_WORK"
BENCH_WORK=$(cd "$BENCH_WORK" && pwd)
: >"$BENCH_WORK/commands.txt"
REF=$BENCH_WORK/ref
export RES_DIR=$BENCH_WORK/results
REFEREE_PID=""
REPORT_DIR=${REPORT_DIR:-}
[ "$IS_ALL" = 1 ] && [ -z "$REPORT_DIR" ] && REPORT_DIR=$BENCH_SRC/report

cleanup() {
	load_sink_stop
	[ -n "$REFEREE_PID" ] && bench_stop_pid "$REFEREE_PID" 10
	[ -x "$REF/stop_all.sh" ] && "$REF/stop_all.sh" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- referee binary: a release build of HEAD unless told otherwise -----------------------
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ " $PROXIES " != *" referee "* ]]; then
	REFEREE_BIN=/bin/true   # reference only: nothing to build
	REFEREE_DESC="not measured"
elif [ -n "${REFEREE_BIN:-}" ]; then
	REFEREE_DESC="$REFEREE_BIN (given; HEAD is $COMMIT)"
else
	if [ "${REFEREE_SOURCE:-head}" = tree ]; then
		src=$REPO bld=$REPO/build-bench
		REFEREE_DESC="work tree at $COMMIT"
		[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] && REFEREE_DESC+=" with uncommitted changes"
	else
		src=$REPO/build-bench-head/src bld=$REPO/build-bench-head/build
		bench_log "exporting HEAD ($COMMIT) to $src"
		bench_sync_head "$REPO" "$src" || bench_die "git archive HEAD failed"
		REFEREE_DESC="commit $COMMIT"
	fi
	bench_cmd cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || bench_die "cmake configure failed"
	bench_cmd_log "$BENCH_WORK/build.log" cmake --build "$bld" -j2 --target referee ||
		{ tail -n 30 "$BENCH_WORK/build.log"; bench_die "building referee failed (log: $BENCH_WORK/build.log)"; }
	REFEREE_BIN=$bld/referee
	REFEREE_DESC+=" (RelWithDebInfo, $REFEREE_BIN)"
fi
[ -x "$REFEREE_BIN" ] || bench_die "referee binary not found: $REFEREE_BIN"
if ldd "$REFEREE_BIN" 2>/dev/null | grep -qE 'lib(a|t)san'; then
	bench_log "WARNING: $REFEREE_BIN is a sanitizer build; its CPU figures are not representative"
fi

# ---- writable copy of the reference, data, ports -----------------------------------------
if [ ! -d "$REF" ]; then
	bench_cmd cp -r "$SHARED/bench-reference" "$REF" || bench_die "copy failed"
	chmod -R u+w "$REF"
	rm -rf "$REF/results" "$REF/run"
fi
KAM_PORT=$(bench_pick_port "${KAM_PORT:-5070}")
SINK_PORT=$(bench_pick_port "${SINK_PORT:-5080}")
UAC_PORT=$(bench_pick_port "${UAC_PORT:-5060}")
REF_PORT=$(bench_pick_port "${REF_PORT:-5075}")
REDIS_PORT=$(bench_pick_tcp_port "${REDIS_PORT:-6379}")
export KAM_PORT SINK_PORT UAC_PORT REDIS_PORT
# the reference's helpers (cpu_ticks, cpu_ns, descendants, all_cpu_ticks, foreign_ticks, sipp_rates)
# shellcheck source=/dev/null
. "$REF/lib.sh"
LOAD_REF=$REF
bench_cmd "$REF/gen_data.sh" || bench_die "gen_data.sh failed"
bench_log "ports: referee $REF_PORT, kamailio $KAM_PORT, sink $SINK_PORT, SIPp clients from $UAC_PORT, redis $REDIS_PORT; work $BENCH_WORK"
referee_users_yaml "$REF/data/users.csv" "$BENCH_WORK/users.yaml"

KAM_MODE_ARGS=()
if ! ls /usr/lib/*/kamailio/modules/crypto.so /usr/lib/kamailio/modules/crypto.so >/dev/null 2>&1; then
	# crypto.so (kamailio-tls-modules) signs the REFER identity with HMAC-SHA256; without it the
	# reference's md5 variant is used (only the refer scenario is affected)
	KAM_MODE_ARGS=(--md5sig)
	bench_log "kamailio crypto.so not installed: Kamailio runs with --md5sig (REFER signature md5)"
fi

REDIS_PID=""
start_redis() { # the reference's Redis (user:<u> for Kamailio) plus referee's referee:user:<id>
	[ -n "$REDIS_PID" ] && bench_pid_alive "$REDIS_PID" && return 0
	bench_cmd "$REF/start_redis.sh" || bench_die "start_redis.sh failed"
	REDIS_PID=$(cat "$REF/run/redis.pid")
	referee_redis_users "$REF/data/users.csv" "$BENCH_WORK/referee_redis_users.txt" || bench_die "users.csv conversion failed"
	printf '+ redis-cli -h 127.0.0.1 -p %s < %q\n' "$REDIS_PORT" "$BENCH_WORK/referee_redis_users.txt" >&2
	printf 'redis-cli -h 127.0.0.1 -p %s < %q\n' "$REDIS_PORT" "$BENCH_WORK/referee_redis_users.txt" >>"$BENCH_WORK/commands.txt"
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" <"$BENCH_WORK/referee_redis_users.txt" >/dev/null || bench_die "loading referee users into Redis failed"
	local n
	n=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --scan --pattern 'referee:user:*' | wc -l)
	[ "$n" = "$(($(wc -l <"$REF/data/users.csv") - 1))" ] || bench_die "Redis holds $n referee users, expected all of users.csv"
	bench_log "redis pid $REDIS_PID on 127.0.0.1:$REDIS_PORT: $n referee:user:* keys beside the reference's user:*"
}

start_referee() { # start_referee SCENARIO
	local cfgf=$BENCH_WORK/referee-$1.yaml
	[ -n "$REFEREE_PID" ] && bench_stop_pid "$REFEREE_PID" 10
	REFEREE_PID=""
	referee_conf "$1" "$cfgf" "$REF_PORT" "$SINK_PORT" "$BENCH_WORK"
	bench_cmd "$REFEREE_BIN" -c "$cfgf" --check >&2 || bench_die "referee --check rejected $cfgf"
	printf '%q -c %q &\n' "$REFEREE_BIN" "$cfgf" >>"$BENCH_WORK/commands.txt"
	printf '+ %q -c %q &\n' "$REFEREE_BIN" "$cfgf" >&2
	"$REFEREE_BIN" -c "$cfgf" </dev/null >>"$BENCH_WORK/referee.log" 2>&1 &
	REFEREE_PID=$!
	bench_wait_port "$REF_PORT" 20 "$REFEREE_PID" ||
		{ tail -n 20 "$BENCH_WORK/referee.log"; bench_die "referee did not start (log: $BENCH_WORK/referee.log)"; }
	bench_log "referee pid $REFEREE_PID on udp 127.0.0.1:$REF_PORT ($cfgf)"
}

start_kamailio() { # start_kamailio SCENARIO
	local args=("${KAM_MODE_ARGS[@]}")
	[ "$1" = call ] && args+=(--noauth)
	[ "$1" = invite-redis ] && args+=(--redis)
	bench_cmd "$REF/start_kamailio.sh" "$KAM_PORT" 2 "${args[@]}" || bench_die "start_kamailio.sh failed"
	KAM_PIDS=$(descendants "$(cat "$REF/run/kamailio-$KAM_PORT.pid")" | sort -un | tr '\n' ' ')
}

scen_var() { # scen_var SCENARIO SUFFIX: the environment variable name, e.g. INVITE_REDIS_RATES
	local v=${1^^}
	echo "${v//-/_}_$2"
}

# scen_setup SCENARIO: LOAD_XML, LOAD_INF, LOAD_SINK of its SIPp client
scen_setup() {
	LOAD_INF=()
	LOAD_SINK=yes
	case "$1" in
		options) LOAD_XML=$REF/sipp/uac_options.xml LOAD_SINK=no ;;
		call) LOAD_XML=$REF/sipp/uac_call.xml LOAD_INF=(-inf "$REF/sipp/users_call.csv") ;;
		invite | invite-redis) LOAD_XML=$REF/sipp/uac_invite_auth.xml LOAD_INF=(-inf "$REF/sipp/users_invite.csv") ;;
		refer) LOAD_XML=$REF/sipp/uac_refer_auth.xml LOAD_INF=(-inf "$REF/sipp/users_refer.csv") ;;
		transfer)
			[ -f "$BENCH_SRC/sipp/refer_transfer.xml" ] || bench_die "no $BENCH_SRC/sipp/refer_transfer.xml"
			LOAD_XML=$BENCH_SRC/sipp/refer_transfer.xml LOAD_INF=(-inf "$REF/sipp/users_invite.csv")
			;;
	esac
}

T0=$(date +%s)
START_UTC=$(date -u '+%F %H:%M')
for scen in "${SCENARIOS[@]}"; do
	scen_setup "$scen"
	rv=$(scen_var "$scen" RATES) cv=$(scen_var "$scen" CLIENTS)
	rates=${!rv}
	dflt=1
	[ "$scen" = options ] && dflt=2
	clients=${!cv:-${CLIENTS:-$dflt}}
	[[ $clients =~ ^[1-8]$ ]] || bench_die "$cv/CLIENTS must be 1..8"
	backend=""
	[ "$scen" = invite-redis ] && { start_redis; backend=$REDIS_PID; }
	systems=()
	if [[ " $PROXIES " == *" kamailio "* ]] && [ "$scen" != transfer ]; then
		start_kamailio "$scen"
		systems+=(kamailio)
	fi
	if [[ " $PROXIES " == *" referee "* ]]; then
		start_referee "$scen"
		systems=(referee "${systems[@]}")
	fi
	declare -A stopped=()
	for rate in $rates; do
		for rep in $(seq "$REPEATS"); do
			for sys in "${systems[@]}"; do
				[ -n "${stopped[$sys]:-}" ] && continue
				if [ "$sys" = referee ]; then port=$REF_PORT PROXY_PIDS=$REFEREE_PID; else port=$KAM_PORT PROXY_PIDS=$KAM_PIDS; fi
				EXTRA_PIDS=$backend
				bench_log "$scen $rate cps, repetition $rep/$REPEATS: $sys"
				if ! load_run "$sys" "$scen" "$port" "$rate" "$DURATION" "$clients" >"$BENCH_WORK/last_run.txt"; then
					stopped[$sys]=$rate
					bench_log "$sys did not PASS $scen at $rate cps: no higher rate for it"
				fi
				grep -E '^(label|successful|failure_pct|achieved|proxy_cpu_us_call|latency|others|verdict)' "$BENCH_WORK/last_run.txt" >&2
				if [ "$sys" = referee ] && ! bench_pid_alive "$REFEREE_PID"; then
					tail -n 20 "$BENCH_WORK/referee.log"
					bench_die "referee died during $scen at $rate cps (log: $BENCH_WORK/referee.log)"
				fi
				sleep 1
			done
		done
	done
	unset stopped
done
[ -s "$RES_DIR/summary.tsv" ] || bench_die "no run produced results"
ELAPSED=$(($(date +%s) - T0))

if command -v gnuplot >/dev/null; then
	bench_cmd "$BENCH_SRC/plot.sh" "$RES_DIR/summary.tsv" "$BENCH_WORK/cpu_per_call.png" >&2 ||
		bench_log "WARNING: plot failed"
fi
{
	echo "# referee vs. Kamailio: CPU per call, ceilings, latency"
	echo
	echo "Run $START_UTC UTC ($((ELAPSED / 60)) min $((ELAPSED % 60)) s), ${DURATION} s per run, $REPEATS repetition(s) per rate:"
	echo
	echo '```sh'
	envs=""
	for v in DURATION REPEATS CLIENTS OPTIONS_RATES CALL_RATES INVITE_RATES INVITE_REDIS_RATES REFER_RATES \
		TRANSFER_RATES OPTIONS_CLIENTS REFEREE_SOURCE REFEREE_BIN REFEREE_INLINE BENCH_CALL_TRUSTED PROXIES; do
		val=$(printenv "$v") && [ -n "$val" ] && envs+="$v=\"$val\" "
	done
	if [ "$IS_ALL" = 1 ]; then echo "${envs}bench/run.sh all"; else echo "${envs}bench/run.sh ${SCENARIOS[*]}"; fi
	echo '```'
	echo
	thr="2 receivers + 2 workers"
	[ "${REFEREE_INLINE:-1}" = 0 ] || thr="2 workers reading their own sockets (threads.inline_receive)"
	echo "referee: $REFEREE_DESC, $thr. $(kamailio -v 2>/dev/null | head -n 1 | sed 's/^version: //;s/ *$//'), 2 children."
	echo "$(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//'), $(redis-server --version 2>/dev/null | awk '{print "Redis " substr($3, 3)}'), $(nproc) CPUs ($(uname -r)), shared with other sessions."
	echo
	awk -f "$BENCH_SRC/lib/report.awk" "$RES_DIR/summary.tsv"
	echo
	echo "- CPU µs/call: user+system CPU (schedstat) of all the proxy's threads from before the first SIPp client"
	echo "  starts to after the last one exits, divided by the successful calls; Redis µs/call: redis-server's,"
	echo "  the same way. Ratio: referee / Kamailio at the same offered rate (per-call CPU falls as the rate rises)."
	echo "- Verdict (the bench reference's): PASS = under 0.1 % failed or unfinished calls and at least 95 % of"
	echo "  the offered rate achieved; SLOW = no failure, rate not sustained; FAIL otherwise. A proxy's sweep"
	echo "  stops at its first rate that does not PASS."
	echo "- Latency: SIPp -trace_rtt, first request of a call to its final answer (rtd=\"true\"), p50 / p99 over"
	echo "  all calls; SIPp's clock has 1 ms resolution (<1 = under a millisecond)."
	echo "- Other load %: CPU of every other process on the host during the run, in % of all CPUs; above 5 %"
	echo "  the run was disturbed by other sessions on this shared machine."
	echo
	[ -f "$BENCH_WORK/cpu_per_call.png" ] && echo "![CPU per call against offered rate](cpu_per_call.png)" && echo
	echo "Run folders (command.txt, SIPp statistics, rtt files): \`$RES_DIR\`; every command: \`commands.txt\`."
} >"$BENCH_WORK/report.md"
if [ -n "$REPORT_DIR" ]; then
	mkdir -p "$REPORT_DIR"
	cp "$BENCH_WORK/report.md" "$RES_DIR/summary.tsv" "$BENCH_WORK/commands.txt" "$REPORT_DIR/"
	[ -f "$BENCH_WORK/cpu_per_call.png" ] && cp "$BENCH_WORK/cpu_per_call.png" "$REPORT_DIR/"
	bench_log "report copied to $REPORT_DIR"
fi
cat "$BENCH_WORK/report.md"

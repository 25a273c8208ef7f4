#!/usr/bin/env bash
# run.sh - referee vs. Kamailio 5.6 side by side: every scenario, one command, one report.
#
# usage: bench/run.sh [options|call|invite|invite-redis|refer|transfer|all]...   (default: call)
#   all = options call invite invite-redis refer transfer, and the report goes to bench/report/
#
# For each scenario: starts the reference Kamailio (a writable copy of the shared bench reference,
# its start_kamailio.sh, 2 children; without crypto.so except in refer, where it signs the REFER
# identity with HMAC-SHA256 as referee does) and referee with its SHIPPED threading (the built-in
# defaults of packaging/referee.yaml: no threads key in bench/lib/referee_conf.sh's config), both
# relaying to the same SIPp sink on 127.0.0.1:$SINK_PORT, and the reference's udp_null reflector (the
# floor: what SIPp + the kernel cost per datagram pair, no proxy work); then per offered rate one
# bounded load run per system, interleaved (bench/lib/load.sh: 1..CLIENTS SIPp clients in parallel,
# proxy CPU from /proc/PID/stat and schedstat over one window, context switches, the reference's
# verdict, p50/p99 latency from SIPp -trace_rtt). udp_null answers OPTIONS at PAIRS x the rate (the
# datagram pairs one call of the scenario costs a proxy), so its CPU x PAIRS is the floor per call.
# A proxy's sweep stops at its first rate that does not PASS. Then (PROFILE=1) where referee's CPU
# goes at one rate per scenario: syscalls per call (strace -c -f), a perf profile (cpu-clock, kernel
# and user symbols). At the end: a Markdown report (bench/lib/report.awk: ratios to Kamailio and to
# the floor, the issue 9 targets met or missed by how much) and a PNG plot of CPU per call against
# offered rate (bench/plot.sh, gnuplot).
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
#   OPTIONS_RATES="1000 4000 10000 20000 40000"  CALL_RATES="500 1000 2000 4000"
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
#   README_UPDATE=1        `all` also writes the report into README.md between the bench-report
#                          markers of its Benchmark section (0: leave the README alone)
#   REF_PORT=5075 KAM_PORT=5070 SINK_PORT=5080 UAC_PORT=5060 REDIS_PORT=6379 NULL_PORT=5090
#                          RELAY_PORT=5095 (busy: a free one)
#   BENCH_CALL_TRUSTED=1   call/options: 127.0.0.1/32 in referee's trusted list
#   REFEREE_THREADS="{receivers: 2, workers: 2, inline_receive: false}"   a threads mapping for
#                          referee instead of the shipped defaults (A/B only: the report says so)
#   FLOOR=1                run udp_null as the floor, and for call bench/udp_relay as the
#                          relaying floor (0: skip both)
#   PROFILE=1              the strace/perf pass for referee after each scenario (0: skip it);
#                          PROFILE_DURATION=4 s per profile run, OPTIONS_PROFILE_RATE=10000,
#                          CALL_PROFILE_RATE=2000, ... per scenario
#   TIMEOUT_PAD=40 IDLE_S=1 SIPP_BUF=4194304
#   PROXIES="referee kamailio"   which proxies to measure (udp_null is FLOOR's)
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
OPTIONS_RATES=${OPTIONS_RATES:-"1000 4000 10000 20000 40000"}
CALL_RATES=${CALL_RATES:-"500 1000 2000 4000"}
INVITE_RATES=${INVITE_RATES:-"500 1000 2000 4000"}
INVITE_REDIS_RATES=${INVITE_REDIS_RATES:-"1000 2000 4000"}
REFER_RATES=${REFER_RATES:-"1000 2000 4000"}
TRANSFER_RATES=${TRANSFER_RATES:-"500 1000 2000"}
export TIMEOUT_PAD=${TIMEOUT_PAD:-40}
IDLE_S=${IDLE_S:-1}
SIPP_BUF=${SIPP_BUF:-4194304}
PROXIES=${PROXIES:-"referee kamailio"}
FLOOR=${FLOOR:-1}
PROFILE=${PROFILE:-1}
PROFILE_DURATION=${PROFILE_DURATION:-4}
# datagram pairs (one received + one sent) a proxy handles per call of each scenario: the floor per
# call is PAIRS x udp_null's CPU per OPTIONS. options: OPTIONS/200. call: INVITE, 200, ACK, BYE, 200
# relayed. invite: INVITE/407 + the ACK of the 407 (absorbed: half a pair) + the call (5). refer:
# REFER/407, REFER relayed, 202 relayed. transfer: REFER/407, REFER, 202, then a call without the 407.
declare -A PAIRS=([options]=1 [call]=5 [invite]=6.5 [invite-redis]=6.5 [refer]=3 [transfer]=8)
declare -A PROFILE_RATE_DEFAULT=([options]=10000 [call]=2000 [invite]=2000 [invite-redis]=2000 [refer]=2000 [transfer]=1000)
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
	[ -n "${RELAY_PID:-}" ] && bench_stop_pid "$RELAY_PID" 5
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
NULL_PORT=$(bench_pick_port "${NULL_PORT:-5090}")
RELAY_PORT=$(bench_pick_port "${RELAY_PORT:-5095}")
REDIS_PORT=$(bench_pick_tcp_port "${REDIS_PORT:-6379}")
export KAM_PORT SINK_PORT UAC_PORT REDIS_PORT NULL_PORT
# the reference's helpers (cpu_ticks, cpu_ns, descendants, all_cpu_ticks, foreign_ticks, sipp_rates)
# shellcheck source=/dev/null
. "$REF/lib.sh"
LOAD_REF=$REF
bench_cmd "$REF/gen_data.sh" || bench_die "gen_data.sh failed"
bench_log "ports: referee $REF_PORT, kamailio $KAM_PORT, udp_null $NULL_PORT, udp_relay $RELAY_PORT, sink $SINK_PORT, SIPp clients from $UAC_PORT, redis $REDIS_PORT; work $BENCH_WORK"
referee_users_yaml "$REF/data/users.csv" "$BENCH_WORK/users.yaml"

# Kamailio loads crypto.so only where it signs something (refer: the REFER identity, HMAC-SHA256 like
# referee's grant): loading it doubles Kamailio's CPU per message even when nothing is signed. Any one
# of the candidate paths is enough (a missing other path is no reason to go without).
KAM_CRYPTO=""
for f in /usr/lib/*/kamailio/modules/crypto.so /usr/lib/kamailio/modules/crypto.so; do
	[ -f "$f" ] && { KAM_CRYPTO=$f; break; }
done
if [ -n "$KAM_CRYPTO" ]; then
	KAM_REFER_SIG="HMAC-SHA256 ($KAM_CRYPTO)"
else
	KAM_REFER_SIG="md5 (--md5sig: crypto.so, package kamailio-tls-modules, is not installed)"
	bench_log "kamailio crypto.so not installed: the refer scenario runs Kamailio with --md5sig"
fi
bench_log "kamailio: refer signs with $KAM_REFER_SIG; every other scenario runs without crypto.so (--md5sig, nothing signed)"

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
	bench_cmd "$REFEREE_BIN" -c "$cfgf" --check >"$BENCH_WORK/referee-check.txt" 2>&1 ||
		{ cat "$BENCH_WORK/referee-check.txt" >&2; bench_die "referee --check rejected $cfgf"; }
	cat "$BENCH_WORK/referee-check.txt" >&2
	printf '%q -c %q &\n' "$REFEREE_BIN" "$cfgf" >>"$BENCH_WORK/commands.txt"
	printf '+ %q -c %q &\n' "$REFEREE_BIN" "$cfgf" >&2
	"$REFEREE_BIN" -c "$cfgf" </dev/null >>"$BENCH_WORK/referee.log" 2>&1 &
	REFEREE_PID=$!
	bench_wait_port "$REF_PORT" 20 "$REFEREE_PID" ||
		{ tail -n 20 "$BENCH_WORK/referee.log"; bench_die "referee did not start (log: $BENCH_WORK/referee.log)"; }
	bench_log "referee pid $REFEREE_PID on udp 127.0.0.1:$REF_PORT ($cfgf)"
	sleep 1
	rss_note "$1" "at rest after start"
}

# rss_note SCENARIO WHEN: referee's resident memory now and its peak (issue 9: at rest <= 64 MB)
rss_note() {
	awk -v s="$1" -v w="$2" '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 }
		END { if (r != "") printf "| %s | %s | %.1f | %.1f |\n", s, w, r / 1024, h / 1024 }' \
		"/proc/$REFEREE_PID/status" 2>/dev/null >>"$BENCH_WORK/rss.md"
}

NULL_PID=""
start_udp_null() { # the reference's reflector on 127.0.0.1:$NULL_PORT (the floor)
	[ -n "$NULL_PID" ] && bench_pid_alive "$NULL_PID" && return 0
	bench_cmd "$REF/start_udp_null.sh" "$NULL_PORT" || bench_die "start_udp_null.sh failed"
	NULL_PID=$(cat "$REF/run/udp_null-$NULL_PORT.pid")
	bench_log "udp_null pid $NULL_PID on udp 127.0.0.1:$NULL_PORT"
}

RELAY_PID=""
start_udp_relay() { # bench/udp_relay on 127.0.0.1:$RELAY_PORT, relaying to the sink (the relaying floor)
	[ -n "$RELAY_PID" ] && bench_pid_alive "$RELAY_PID" && return 0
	if [ ! -x "$BENCH_WORK/udp_relay" ]; then
		bench_cmd cc -O2 -std=c17 -Wall -Wextra -o "$BENCH_WORK/udp_relay" "$BENCH_SRC/udp_relay.c" ||
			bench_die "cannot build $BENCH_SRC/udp_relay.c"
	fi
	bench_udp_port_busy "$RELAY_PORT" && bench_die "udp port $RELAY_PORT (udp_relay) is busy"
	printf '%q -l %d -b %d 2>%q &\n' "$BENCH_WORK/udp_relay" "$RELAY_PORT" "$SINK_PORT" "$BENCH_WORK/udp_relay.log" >>"$BENCH_WORK/commands.txt"
	"$BENCH_WORK/udp_relay" -l "$RELAY_PORT" -b "$SINK_PORT" 2>"$BENCH_WORK/udp_relay.log" &
	RELAY_PID=$!
	bench_wait_port "$RELAY_PORT" 5 "$RELAY_PID" || bench_die "udp_relay did not start ($BENCH_WORK/udp_relay.log)"
	bench_log "udp_relay pid $RELAY_PID on udp 127.0.0.1:$RELAY_PORT -> sink $SINK_PORT"
}

start_kamailio() { # start_kamailio SCENARIO
	local args=()
	[ "$1" != refer ] || [ -z "$KAM_CRYPTO" ] && args+=(--md5sig)
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

# profile_referee SCENARIO RATE: where referee's CPU goes at RATE (runs outside summary.tsv, whose
# figures must not carry the tracers' overhead): syscalls per call from strace -c -f over one run,
# then a perf profile (cpu-clock samples, call graphs, kernel and user) over another, and the context
# switches per call of an untraced run. Writes $BENCH_WORK/profile/SCENARIO.txt.
profile_referee() {
	local scen=$1 rate=$2 dir=$BENCH_WORK/profile out spid calls
	mkdir -p "$dir"
	out=$dir/$scen.txt
	: >"$out"
	local saved_res=$RES_DIR
	RES_DIR=$dir/runs
	mkdir -p "$RES_DIR"
	PROXY_PIDS=$REFEREE_PID EXTRA_PIDS=${backend:-}
	if command -v strace >/dev/null; then
		printf '+ strace -c -f -q -o %q -p %s &\n' "$dir/$scen.strace" "$REFEREE_PID" >>"$BENCH_WORK/commands.txt"
		strace -c -f -q -o "$dir/$scen.strace" -p "$REFEREE_PID" 2>/dev/null &
		spid=$!
		sleep 1
		load_run referee "$scen" "$REF_PORT" "$rate" "$PROFILE_DURATION" "$clients" >"$dir/runs/$scen.strace_run.txt"
		kill -INT "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
		calls=$(awk '/^successful_calls/ { print $2 }' "$dir/runs/$scen.strace_run.txt")
		{
			echo "syscalls per call under strace -c -f ($calls calls at $rate cps; strace slows referee, whose batches then grow: see the kernel's count below):"
			awk -v calls="${calls:-0}" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
					n = $4; if (calls > 0) printf "  %-16s %8.2f per call\n", $NF, n / calls }
				$NF == "total" && calls > 0 { printf "  %-16s %8.2f per call\n", "all", $4 / calls }' "$dir/$scen.strace"
		} >>"$out"
	else
		echo "strace not installed (packaging/install-deps.sh --bench): no syscall counts" >>"$out"
	fi
	if command -v perf >/dev/null; then
		# both run until the load run is over (SIGINT), so they cover all of it
		printf '+ perf record -e cpu-clock -F 1999 -g -o %q -p %s &   (SIGINT after the run)\n' "$dir/$scen.perf" "$REFEREE_PID" >>"$BENCH_WORK/commands.txt"
		perf record -q -e cpu-clock -F 1999 -g -o "$dir/$scen.perf" -p "$REFEREE_PID" >/dev/null 2>&1 &
		spid=$!
		# syscalls counted in the kernel (tracepoints: no slowdown, unlike strace)
		local sc_events="raw_syscalls:sys_enter" s
		for s in recvmmsg sendmmsg epoll_wait poll write read epoll_ctl; do sc_events+=",syscalls:sys_enter_$s"; done
		printf '+ perf stat -x, -e %s -o %q -p %s &   (SIGINT after the run)\n' "$sc_events" "$dir/$scen.sysc" "$REFEREE_PID" >>"$BENCH_WORK/commands.txt"
		perf stat -x, -e "$sc_events" -o "$dir/$scen.sysc" -p "$REFEREE_PID" >/dev/null 2>&1 &
		local cpid=$!
		sleep 1
		load_run referee "$scen" "$REF_PORT" "$rate" "$PROFILE_DURATION" "$clients" >"$dir/runs/$scen.perf_run.txt"
		kill -INT "$spid" "$cpid" 2>/dev/null
		wait "$spid" 2>/dev/null
		wait "$cpid" 2>/dev/null
		calls=$(awk '/^successful_calls/ { print $2 }' "$dir/runs/$scen.perf_run.txt")
		{
			echo
			echo "syscalls per call at $rate cps, counted by the kernel (perf stat tracepoints over $calls calls):"
			awk -F, -v calls="${calls:-0}" '$1 ~ /^[0-9]+$/ && calls > 0 {
					name = $3; sub(/^syscalls:sys_enter_/, "", name); sub(/^raw_syscalls:sys_enter$/, "all", name)
					printf "  %-16s %8.2f per call\n", name, $1 / calls }' "$dir/$scen.sysc" 2>/dev/null
		} >>"$out"
		{
			echo
			echo "context switches per call (the perf run at $rate cps): $(awk '/^ctx_switches_call/ { print $2 }' "$dir/runs/$scen.perf_run.txt")"
			echo
			echo "perf profile at $rate cps (cpu-clock samples of all referee threads; % of referee's CPU):"
			perf report -i "$dir/$scen.perf" --no-children --sort dso --stdio 2>/dev/null |
				awk '/^ +[0-9.]+%/ { printf "  %s\n", $0; if (++n == 6) exit }'
			echo "  top symbols:"
			perf report -i "$dir/$scen.perf" --no-children --sort sym --stdio -g none 2>/dev/null |
				awk '/^ +[0-9.]+%/ { printf "  %s\n", $0; if (++n == 15) exit }'
		} >>"$out"
	else
		echo "perf not installed (packaging/install-deps.sh --bench): no profile" >>"$out"
	fi
	RES_DIR=$saved_res
	bench_log "profile of referee in $scen at $rate cps: $out"
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
	if [ "$FLOOR" = 1 ]; then
		# the relaying floor only where the proxy relays every datagram (no 407 it answers itself)
		[ "$scen" = call ] && { start_udp_relay; systems=(udp_relay "${systems[@]}"); }
		start_udp_null
		systems=(udp_null "${systems[@]}")
	fi
	declare -A stopped=()
	for rate in $rates; do
		for rep in $(seq "$REPEATS"); do
			for sys in "${systems[@]}"; do
				[ -n "${stopped[$sys]:-}" ] && continue
				sclients=$clients
				case $sys in
					referee) port=$REF_PORT PROXY_PIDS=$REFEREE_PID EXTRA_PIDS=$backend ;;
					kamailio) port=$KAM_PORT PROXY_PIDS=$KAM_PIDS EXTRA_PIDS=$backend ;;
					udp_null)
						# the floor: OPTIONS at PAIRS x the rate, answered by the reflector
						port=$NULL_PORT PROXY_PIDS=$NULL_PID EXTRA_PIDS=""
						LOAD_XML=$REF/sipp/uac_options.xml LOAD_INF=() LOAD_SINK=no
						export LOAD_PER_CALL=${PAIRS[$scen]}
						awk -v r="$rate" -v m="$LOAD_PER_CALL" 'BEGIN { exit !(r * m > 12000) }' && sclients=2
						[ "$scen" = options ] && sclients=$clients
						;;
					udp_relay)
						# the same call, relayed with no work: the sink sends its answers to the relay
						port=$RELAY_PORT PROXY_PIDS=$RELAY_PID EXTRA_PIDS=""
						export LOAD_SINK_RSA=127.0.0.1:$RELAY_PORT
						;;
				esac
				bench_log "$scen $rate cps, repetition $rep/$REPEATS: $sys"
				ok=1
				load_run "$sys" "$scen" "$port" "$rate" "$DURATION" "$sclients" >"$BENCH_WORK/last_run.txt" || ok=0
				unset LOAD_SINK_RSA
				if [ "$sys" = udp_null ]; then
					unset LOAD_PER_CALL
					scen_setup "$scen"
					[ "$ok" = 1 ] || bench_log "udp_null did not PASS at $rate x ${PAIRS[$scen]} OPTIONS/s: that floor is SIPp-bound"
				elif [ "$ok" = 0 ]; then
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
	[ -n "$REFEREE_PID" ] && bench_pid_alive "$REFEREE_PID" && rss_note "$scen" "after the sweep"
	if [ "$PROFILE" = 1 ] && [[ " $PROXIES " == *" referee "* ]] && bench_pid_alive "$REFEREE_PID"; then
		prv=$(scen_var "$scen" PROFILE_RATE)
		profile_referee "$scen" "${!prv:-${PROFILE_RATE_DEFAULT[$scen]}}"
	fi
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
		TRANSFER_RATES OPTIONS_CLIENTS REFEREE_SOURCE REFEREE_BIN REFEREE_THREADS BENCH_CALL_TRUSTED PROXIES FLOOR PROFILE; do
		val=$(printenv "$v") && [ -n "$val" ] && envs+="$v=\"$val\" "
	done
	if [ "$IS_ALL" = 1 ]; then echo "${envs}bench/run.sh all"; else echo "${envs}bench/run.sh ${SCENARIOS[*]}"; fi
	echo '```'
	echo
	# what referee itself said it runs (its start-up log line)
	thr=$(grep -o 'threads: receivers=[0-9]* workers=[0-9]* inline_receive=[a-z]*' "$BENCH_WORK/referee-check.txt" 2>/dev/null | tail -n 1 | sed 's/^threads: //')
	if [ -n "${REFEREE_THREADS:-}" ]; then thr="threads $REFEREE_THREADS (NOT the shipped default: an A/B run), $thr"
	else thr="the shipped default threading ($thr)"; fi
	echo "referee: $REFEREE_DESC, $thr. $(kamailio -v 2>/dev/null | head -n 1 | sed 's/^version: //;s/ *$//'), 2 children."
	echo
	echo "Signatures: referee signs Record-Routes and REFER grants with HMAC-SHA256 in every scenario;"
	echo "Kamailio runs without crypto.so (nothing to sign) except in refer, where it signs the REFER identity with"
	echo "$KAM_REFER_SIG. Floor: the reference's udp_null reflector$([ "$FLOOR" = 1 ] || echo ' (not run: FLOOR=0)'), answering OPTIONS at"
	echo "PAIRS x the offered rate (options 1, call 5, invite 6.5, refer 3, transfer 8 datagram pairs per call); its CPU x PAIRS is the"
	echo "floor per call."
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
	echo "- Floor µs/call: udp_null's CPU per OPTIONS x the scenario's datagram pairs per call; ratio to floor:"
	echo "  the proxy's CPU per call / that floor. cs/call: context switches (voluntary + involuntary) of all the"
	echo "  proxy's threads per call."
	echo "- Relaying floor (call only): bench/udp_relay relays the same SIPp call between the same UAC and sink"
	echo "  with no work of its own (a request goes to the sink, a response to the last client; the sink sends"
	echo "  its answers to the relay, SIPp -rsa). udp_null answers its own sender; a relay wakes a different"
	echo "  process with every datagram, three processes share the two CPUs: that is the kernel's and the"
	echo "  scheduler's price of relaying, paid by any proxy. \"(X× relay)\": the proxy's CPU per call / udp_relay's."
	echo
	if [ -s "$BENCH_WORK/rss.md" ]; then
		echo "referee's resident memory (/proc/PID/status VmRSS, VmHWM = peak; target at rest ≤ 64 MB):"
		echo
		echo "| scenario | when | RSS MB | peak MB |"
		echo "|---|---|---:|---:|"
		cat "$BENCH_WORK/rss.md"
		echo
	fi
	if [ -d "$BENCH_WORK/profile" ]; then
		echo "## Where referee's CPU goes"
		echo
		echo "One run per scenario at the rate shown, outside the tables above (strace and perf slow referee down):"
		echo 'syscalls per call from `strace -c -f` and from the kernel'"'"'s tracepoints (`perf stat -e raw_syscalls:sys_enter`,'
		echo 'untraced rate), context switches per call from `/proc/PID/task/*/status`, and a `perf record -e cpu-clock -g`'
		echo 'profile (by binary/kernel, then by symbol).'
		echo
		for f in "$BENCH_WORK"/profile/*.txt; do
			[ -f "$f" ] || continue
			echo "### $(basename "$f" .txt)"
			echo
			echo '```'
			cat "$f"
			echo '```'
			echo
		done
	fi
	[ -f "$BENCH_WORK/cpu_per_call.png" ] && echo "![CPU per call against offered rate](cpu_per_call.png)" && echo
	echo "Run folders (command.txt, SIPp statistics, rtt files): \`$RES_DIR\`; every command: \`commands.txt\`."
} >"$BENCH_WORK/report.md"
if [ -n "$REPORT_DIR" ]; then
	mkdir -p "$REPORT_DIR"
	cp "$BENCH_WORK/report.md" "$RES_DIR/summary.tsv" "$BENCH_WORK/commands.txt" "$REPORT_DIR/"
	[ -f "$BENCH_WORK/cpu_per_call.png" ] && cp "$BENCH_WORK/cpu_per_call.png" "$REPORT_DIR/"
	bench_log "report copied to $REPORT_DIR"
fi
# `all`: the report goes into the README's Benchmark section, between its two markers (headings one
# level down, the plot's path from the repository root)
if [ "$IS_ALL" = 1 ] && [ "${README_UPDATE:-1}" = 1 ] && grep -q '^<!-- bench-report:begin' "$REPO/README.md"; then
	rel=${REPORT_DIR#"$REPO"/}
	sed -e '1d' -e 's/^## /### /' -e "s|(cpu_per_call.png)|($rel/cpu_per_call.png)|" -e '/^Run folders/d' \
		"$BENCH_WORK/report.md" >"$BENCH_WORK/readme_part.md"
	awk -v part="$BENCH_WORK/readme_part.md" '
		/^<!-- bench-report:begin/ { print; while ((getline l < part) > 0) print l; skip = 1; next }
		/^<!-- bench-report:end/ { skip = 0 }
		!skip { print }' "$REPO/README.md" >"$BENCH_WORK/README.new" && mv "$BENCH_WORK/README.new" "$REPO/README.md"
	bench_log "README.md Benchmark section updated from the report (review and commit it)"
fi
cat "$BENCH_WORK/report.md"

#!/usr/bin/env bash
# run.sh - referee vs. Kamailio 5.6 side by side, one command, bounded in time and calls.
#
# usage: bench/run.sh [call|options|invite|refer|transfer|all]...      (default: call)
#
# For each scenario: copies the read-only bench reference to a writable temp folder, starts the
# reference Kamailio (its start_kamailio.sh, 2 children) and referee (2 receivers, 2 workers, an
# equivalent config, bench/lib/referee_conf.sh), both relaying to the same SIPp sink on
# 127.0.0.1:$SINK_PORT, then for each offered rate runs the reference's run_ab.sh (one SIPp run per
# proxy, interleaved, CPU of the proxy processes from /proc) and prints a Markdown table
# (bench/lib/report.awk). Every SIPp run is bounded by -m RATE*DURATION and `timeout`.
#   call     uac_call.xml: INVITE/200/ACK/BYE/200 relayed, no auth (Kamailio -A WITH_NOAUTH)
#   options  uac_options.xml: OPTIONS answered 200 by the proxy
#   invite   uac_invite_auth.xml: 407, authenticated INVITE, permission check, call
#   refer    uac_refer_auth.xml: 407, authenticated REFER, Refer-To rewrite, 202
#   transfer bench/sipp/refer_transfer.xml: authenticated REFER + the transferee's INVITE authorized
#            by the grant alone, call, BYE (referee only: the reference Kamailio has no grants)
#
# environment (all optional)
#   DURATION=10            seconds of load per run
#   REPEATS=1              interleaved repetitions per rate (run_ab.sh)
#   CALL_RATES, OPTIONS_RATES, INVITE_RATES, REFER_RATES   rates to sweep (see defaults below)
#   REFEREE_BIN            referee binary; default: build it (RelWithDebInfo) in <repo>/build-bench
#   REFEREE_SHARED_DIR     folder holding bench-reference/ (default <repo>/../shared)
#   BENCH_WORK             work folder (default mktemp -d); results in $BENCH_WORK/ref/results
#   REF_PORT=5075 KAM_PORT=5070 SINK_PORT=5080 UAC_PORT=5060   (a busy one is replaced by a free one)
#   BENCH_CALL_TRUSTED=1   call/options: put 127.0.0.1/32 in referee's trusted list
#   TIMEOUT_PAD=40         extra seconds per SIPp run for the retransmission tail
#   PROXIES="referee kamailio"   which systems to measure (e.g. PROXIES=kamailio: reference only)
# Output: the table on stdout and in $BENCH_WORK/report.md; exact commands in
# $BENCH_WORK/commands.txt and each run's command.txt.
set -uo pipefail
BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_SRC/.." && pwd)
. "$BENCH_SRC/lib/common.sh"
. "$BENCH_SRC/lib/referee_conf.sh"

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(call)
if [ "${SCENARIOS[0]}" = all ]; then SCENARIOS=(options call invite refer transfer); fi
for s in "${SCENARIOS[@]}"; do
	case "$s" in
		call | options | invite | refer | transfer) ;;
		-h | --help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) bench_die "unknown scenario '$s' (call|options|invite|refer|transfer|all)" ;;
	esac
done

DURATION=${DURATION:-10}
REPEATS=${REPEATS:-1}
CALL_RATES=${CALL_RATES:-"500 1000 2000 3000"}
OPTIONS_RATES=${OPTIONS_RATES:-"1000 4000 16000"}
INVITE_RATES=${INVITE_RATES:-"500 1000 2000 3000"}
REFER_RATES=${REFER_RATES:-"500 1000 2000 4000"}
TRANSFER_RATES=${TRANSFER_RATES:-"250 500 1000 2000"}
export TIMEOUT_PAD=${TIMEOUT_PAD:-40}
SHARED=${REFEREE_SHARED_DIR:-$REPO/../shared}
[ -d "$SHARED/bench-reference" ] || bench_die "no bench reference at $SHARED/bench-reference (set REFEREE_SHARED_DIR)"
for c in sipp kamailio perl python3 ss awk timeout; do
	command -v "$c" >/dev/null || bench_die "'$c' not installed (packaging/install-deps.sh --bench)"
done

BENCH_WORK=${BENCH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/referee-bench.XXXXXX")}
mkdir -p "$BENCH_WORK"
: >"$BENCH_WORK/commands.txt"
REF=$BENCH_WORK/ref
REFEREE_PID=""

cleanup() {
	[ -n "$REFEREE_PID" ] && bench_stop_pid "$REFEREE_PID" 10
	[ -x "$REF/stop_all.sh" ] && "$REF/stop_all.sh" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- referee binary: a release build unless told otherwise -------------------------------
PROXIES=${PROXIES:-"referee kamailio"}
if [[ " $PROXIES " != *" referee "* ]]; then
	REFEREE_BIN=/bin/true   # reference only: nothing to build
elif [ -z "${REFEREE_BIN:-}" ]; then
	bench_cmd cmake -S "$REPO" -B "$REPO/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
		bench_die "cmake configure failed"
	bench_cmd cmake --build "$REPO/build-bench" -j2 --target referee >"$BENCH_WORK/build.log" 2>&1 ||
		{ tail -n 30 "$BENCH_WORK/build.log"; bench_die "building referee failed (log: $BENCH_WORK/build.log)"; }
	REFEREE_BIN=$REPO/build-bench/referee
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
bench_cmd "$REF/gen_data.sh" || bench_die "gen_data.sh failed"
KAM_PORT=$(bench_pick_port "${KAM_PORT:-5070}")
SINK_PORT=$(bench_pick_port "${SINK_PORT:-5080}")
UAC_PORT=$(bench_pick_port "${UAC_PORT:-5060}")
export KAM_PORT SINK_PORT UAC_PORT
REF_PORT=$(bench_pick_port "${REF_PORT:-5075}")
export RES_DIR=$REF/results
bench_log "ports: referee $REF_PORT, kamailio $KAM_PORT, sink $SINK_PORT, SIPp client $UAC_PORT; work $BENCH_WORK"
referee_users_yaml "$REF/data/users.csv" "$BENCH_WORK/users.yaml"

KAM_MODE_ARGS=()
if ! ls /usr/lib/*/kamailio/modules/crypto.so /usr/lib/kamailio/modules/crypto.so >/dev/null 2>&1; then
	# crypto.so (kamailio-tls-modules) signs the REFER identity with HMAC-SHA256; without it the
	# reference's md5 variant is used (only the refer scenario is affected)
	KAM_MODE_ARGS=(--md5sig)
	bench_log "kamailio crypto.so not installed: Kamailio runs with --md5sig (REFER signature md5)"
fi

start_referee() { # start_referee SCENARIO
	local cfgf=$BENCH_WORK/referee-$1.yaml
	[ -n "$REFEREE_PID" ] && bench_stop_pid "$REFEREE_PID" 10
	REFEREE_PID=""
	referee_conf "$1" "$cfgf" "$REF_PORT" "$SINK_PORT" "$BENCH_WORK"
	bench_cmd "$REFEREE_BIN" -c "$cfgf" --check || bench_die "referee --check rejected $cfgf"
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
	bench_cmd "$REF/start_kamailio.sh" "$KAM_PORT" 2 "${args[@]}" || bench_die "start_kamailio.sh failed"
}

rates_of() {
	case "$1" in
		call) echo "$CALL_RATES" ;;
		options) echo "$OPTIONS_RATES" ;;
		invite) echo "$INVITE_RATES" ;;
		refer) echo "$REFER_RATES" ;;
		transfer) echo "$TRANSFER_RATES" ;;
	esac
}

T0=$(date +%s)
AB_DIRS=()
for scen in "${SCENARIOS[@]}"; do
	systems=""
	ab_env=()
	ab_scen=$scen
	if [ "$scen" = transfer ]; then
		# run_bench.sh takes a scenario file as is: give it the injection file and the sink
		[ -f "$BENCH_SRC/sipp/refer_transfer.xml" ] || bench_die "no $BENCH_SRC/sipp/refer_transfer.xml"
		cp "$BENCH_SRC/sipp/refer_transfer.xml" "$REF/sipp/transfer.xml"
		ab_scen=$REF/sipp/transfer.xml
		ab_env=(SINK=yes "SIPP_EXTRA=-inf $REF/sipp/users_invite.csv")
	fi
	if [[ " $PROXIES " == *" kamailio "* ]] && [ "$scen" != transfer ]; then
		start_kamailio "$scen"
		systems="kamailio:$KAM_PORT"
	fi
	if [[ " $PROXIES " == *" referee "* ]]; then
		start_referee "$scen"
		systems="referee:$REF_PORT $systems"
	fi
	for rate in $(rates_of "$scen"); do
		[ -n "$systems" ] || break
		bench_cmd env "${ab_env[@]}" "$REF/run_ab.sh" "${systems% }" "$ab_scen" "$rate" "$DURATION" "$REPEATS" 2>&1 |
			tee "$BENCH_WORK/ab.log"
		d=$(sed -n 's/^results: //p' "$BENCH_WORK/ab.log" | tail -n 1)
		[ -n "$d" ] && [ -f "$d/summary.tsv" ] && AB_DIRS+=("$d")
		if [ -n "$REFEREE_PID" ] && ! bench_pid_alive "$REFEREE_PID"; then
			tail -n 20 "$BENCH_WORK/referee.log"
			bench_die "referee died during $scen at $rate cps (log: $BENCH_WORK/referee.log)"
		fi
	done
done
[ ${#AB_DIRS[@]} -gt 0 ] || bench_die "no run produced results"

{
	echo "## referee vs. Kamailio ($(date -u +%F), ${DURATION}s per run, $REPEATS repetition(s))"
	echo
	echo "Command: \`bench/run.sh ${SCENARIOS[*]}\` (DURATION=$DURATION REPEATS=$REPEATS); referee $REFEREE_BIN,"
	echo "$(kamailio -v 2>/dev/null | head -n 1 | sed 's/^version: //'), $(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//'), $(nproc) CPUs, $(($(date +%s) - T0)) s."
	echo
	for d in "${AB_DIRS[@]}"; do cat "$d/summary.tsv"; done | awk -f "$BENCH_SRC/lib/report.awk"
	echo
	echo "Runs: $RES_DIR (command.txt in each run folder); commands: $BENCH_WORK/commands.txt"
} >"$BENCH_WORK/report.md"
cat "$BENCH_WORK/report.md"

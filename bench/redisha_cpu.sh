#!/usr/bin/env bash
# redisha_cpu.sh - referee's CPU per authenticated call on the three Redis set-ups of SPEC §12:
# one redis-server, Sentinel (master + replica + 3 sentinels) and a three-master Cluster, the
# same SIPp load on each (auth_uac_call.xml: INVITE, 407, authenticated INVITE with a nonce-count
# check in Redis, 200, ACK, BYE), interleaved REPEATS times. CPU = the sum over referee's threads
# of /proc/PID/task/*/schedstat (ns on CPU) across the SIPp run, divided by the successful calls
# (the accounting of bench/lib/load.sh). Redis's own CPU is not counted.
#   bench/redisha_cpu.sh BUILD_DIR [CALLS] [RATE] [REPEATS]
# Needs redis-server, redis-sentinel, sipp (packaging/install-deps.sh --test). Loopback only.
set -uo pipefail
BUILD=$(cd "${1:?usage: bench/redisha_cpu.sh BUILD_DIR [CALLS] [RATE] [REPEATS]}" && pwd)
CALLS=${2:-6000}
RATE=${3:-300}
REPEATS=${4:-3}
export REFEREE_BUILD_DIR=$BUILD REFEREE_BIN=$BUILD/referee
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../tests/integration/lib.sh"
. "$HERE/../tests/integration/lib_auth.sh"
. "$HERE/../tests/integration/lib_redisha.sh"
ADMIN=$BUILD/referee-admin
W=$IT_WORK

read -r SINGLE MPORT RPORT S1 S2 S3 C1 C2 C3 <<<"$(rha_ports 9)"
rha_redis single "$SINGLE"
rha_sentinel_set "$MPORT" "$RPORT" "$S1" "$S2" "$S3"
rha_cluster "$C1" "$C2" "$C3"

referee_secret "$W/secret"
UAS_PORT=$(it_free_udp_port)
sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" 3600
declare -A URL=(
	[single]="redis://127.0.0.1:$SINGLE"
	[sentinel]="redis-sentinel://127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3/mymaster"
	[cluster]="redis-cluster://127.0.0.1:$C1,127.0.0.1:$C2,127.0.0.1:$C3"
)
MODES=(single sentinel cluster)
for m in "${MODES[@]}"; do
	port=$(it_free_udp_port)
	printf -v "PORT_$m" '%s' "$port"
	mport=$(authit_free_tcp_port)
	printf -v "MPORT_$m" '%s' "$mport"
	cat >"$W/$m.yaml" <<EOF
listen: [udp://127.0.0.1:$port]
domains: [example.com]
secret_file: $W/secret
threads: {receivers: 2, workers: 2, inline_receive: true}
routes:
  local: udp://127.0.0.1:$UAS_PORT
store:
  backend: redis
  redis: ${URL[$m]}
  cache_max_age: 3600
auth:
  algorithms: [MD5]
  failure_limit: {count: 1000000, window: 60}
metrics:
  listen: 127.0.0.1:$mport
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
log_level: ${LOG_LEVEL:-warn}
EOF
	RHA_USERS=()
	rha_add_users "$W/$m.yaml" $(seq 1000 1099)
done
authit_sipp_csv "$W/users.csv" 2551234 "${RHA_USERS[@]}"

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
printf 'mode\trepeat\tcalls_ok\tfailed\tcpu_us_per_call\tstore_misses\tredirects\n' | tee "$W/results.tsv"
for r in $(seq "$REPEATS"); do
	for m in "${MODES[@]}"; do
		v="PORT_$m"
		authit_referee_start "$m" "$W/$m.yaml" "${!v}"
		pid=$AUTHIT_PID
		# warm: every user cached, the master / slot map known
		sipp_uac_run "warm-$m-$r" 200 200 60 "${!v}" "$IT_SIPP_DIR/auth_uac_call.xml" -inf "$W/users.csv" >/dev/null 2>&1
		c0=$(cpu_ns "$pid")
		sipp_uac_run "run-$m-$r" "$CALLS" "$RATE" $((CALLS / RATE + 60)) "${!v}" "$IT_SIPP_DIR/auth_uac_call.xml" \
			-inf "$W/users.csv" 2>/dev/null
		c1=$(cpu_ns "$pid")
		ok=$SIPP_OK
		v="MPORT_$m"
		misses=$(authit_metric "${!v}" referee_store_events_total 'event="miss"')
		redirects=$(authit_metric "${!v}" referee_store_redis_redirects_total)
		awk -v m="$m" -v r="$r" -v ok="$ok" -v f="$SIPP_FAILED" -v c="$((c1 - c0))" -v mi="$misses" -v rd="$redirects" \
			'BEGIN { printf "%s\t%s\t%s\t%s\t%.1f\t%s\t%s\n", m, r, ok, f, (ok > 0 ? c / 1000 / ok : 0), mi, rd }' |
			tee -a "$W/results.tsv"
		it_kill "$pid"
	done
done
echo "median CPU us per authenticated call (of $REPEATS runs, $CALLS calls at $RATE/s each):"
awk -F'\t' 'NR > 1 { v[$1] = v[$1] " " $5 } END { for (m in v) print m, v[m] }' "$W/results.tsv" |
	while read -r m vals; do
		printf '%s %s\n' "$m" "$(printf '%s\n' $vals | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
	done | sort | tee "$W/median.txt"
cp "$W/results.tsv" "$W/median.txt" "${RESULTS_DIR:-/tmp}/" 2>/dev/null
it_check "bench done (results in ${RESULTS_DIR:-/tmp}/results.tsv)"
it_finish

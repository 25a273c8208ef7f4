#!/usr/bin/env bash
# soak.sh [BUILD_DIR] - the soak run of issue 13: referee on the shipped configuration
# (packaging/referee.yaml, users from packaging/users.yaml; only its ports are moved to free
# ones, its secret generated, limits.source_rate lifted for the one SIPp source and health probes
# off for the UAS that answers no OPTIONS) relays SIPp calls (INVITE/200/ACK/BYE/200 to extension 1234,
# which needs nothing) at RATE calls/s (default 2000, half of what the box sustains: see the
# Benchmark section of the README) for DURATION seconds (default 600), all at nice 19.
# Every INTERVAL seconds (default 60) it records referee's RSS, open file descriptors and
# table sizes (referee_table_entries from /metrics), and at the end SIPp's successful and
# failed calls; the lot goes to bench/report/soak.txt. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
B=$(cd "${1:-build}" && pwd)
RATE=${RATE:-2000}
DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-60}
command -v sipp >/dev/null || { echo "soak.sh: sipp not installed (packaging/install-deps.sh --bench)" >&2; exit 2; }
[ -x "$B/referee" ] || { echo "soak.sh: $B/referee not built" >&2; exit 2; }
W=$(mktemp -d /tmp/referee-soak.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_udp() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_tcp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_udp) UAS=$(free_udp) HTTP=$(free_tcp)
(umask 077 && openssl rand -base64 32 >"$W/referee.secret")
sed -e "s#udp://127.0.0.1:5060#udp://127.0.0.1:$PORT#" -e "s#udp://127.0.0.1:5080#udp://127.0.0.1:$UAS#" \
	-e "s#127.0.0.1:9465#127.0.0.1:$HTTP#" -e "s#^  file: users.yaml#  file: $SRC/packaging/users.yaml#" \
	packaging/referee.yaml >"$W/referee.yaml"
# one SIPp client stands for every phone: lift the per-source rate (SPEC §13) so it does not cap
# the offered load; the limiter still runs for every request
printf 'limits: {source_rate: {rate: 1000000, burst: 1000000}}\n' >>"$W/referee.yaml"
# the SIPp UAS answers no OPTIONS: with the default health probes (every 10 s, down after 3
# unanswered) the route went down 30 s in and every later call was a 503 (seen: 41 768 of 1.2 M
# calls succeeded), so probes are off as in bench/run.sh
printf 'health: {interval: 0}\n' >>"$W/referee.yaml"
"$B/referee" -c "$W/referee.yaml" --check >/dev/null
nice -n 19 "$B/referee" -c "$W/referee.yaml" 2>"$W/referee.err" &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$HTTP/metrics" && break; sleep 0.1; done
(cd "$W" && exec nice -n 19 sipp -sn uas -i 127.0.0.1 -p "$UAS" -bg -nostdin >/dev/null 2>&1) || true
UAS_PID=$(pgrep -n -f "sipp -sn uas -i 127.0.0.1 -p $UAS" || true)
[ -n "$UAS_PID" ] && PIDS+=("$UAS_PID")
sample() {
	local t=$1 m rss fds
	m=$(curl -s -m 2 "http://127.0.0.1:$HTTP/metrics")
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$RPID/status")
	fds=$(ls "/proc/$RPID/fd" | wc -l)
	printf '%6s %10s %5s %8s %8s %8s %10s %10s\n' "$t" "$rss" "$fds" \
		"$(echo "$m" | awk '$1=="referee_table_entries{table=\"nonce\"}" {print $2}')" \
		"$(echo "$m" | awk '$1=="referee_table_entries{table=\"grant\"}" {print $2}')" \
		"$(echo "$m" | awk '$1=="referee_table_entries{table=\"users\"}" {print $2}')" \
		"$(echo "$m" | awk '$1 ~ /^referee_requests_total/ {s+=$2} END {print s+0}')" \
		"$(echo "$m" | awk '$1 ~ /^referee_flood_drops_total/ {s+=$2} END {print s+0}')"
}
CALLS=$((RATE * DURATION))
(cd "$W" && exec timeout $((DURATION + 60)) nice -n 19 sipp "127.0.0.1:$PORT" -sf "$SRC/tests/integration/sipp/uac_call.xml" \
	-s 1234 -i 127.0.0.1 -p "$(free_udp)" -r "$RATE" -m "$CALLS" -nostdin -buff_size 4194304 \
	-trace_stat -stf "$W/stat.csv" -fd 10 >"$W/sipp.out" 2>&1) &
SIPP=$!
PIDS+=("$SIPP")
start=$(date +%s)
{
	echo "bench/soak.sh at $(git rev-parse --short HEAD 2>/dev/null || echo "${REFEREE_COMMIT:-?}"), $(date -u '+%Y-%m-%d %H:%M') UTC: $RATE calls/s for $DURATION s through packaging/referee.yaml, nice 19"
	printf '%6s %10s %5s %8s %8s %8s %10s %10s\n' t_s rss_kib fds nonce grant users requests flood_drops
	sample 0
	while kill -0 "$SIPP" 2>/dev/null && [ $(($(date +%s) - start)) -lt $((DURATION + 60)) ]; do
		sleep "$INTERVAL"
		sample $(($(date +%s) - start))
	done
	while kill -0 "$SIPP" 2>/dev/null; do sleep 1; done
	sample "end"
	ok=$(tail -n 1 "$W/stat.csv" | awk -F';' -v h="$(head -n 1 "$W/stat.csv")" 'BEGIN{n=split(h,H,";"); for(i=1;i<=n;i++) if(H[i]=="SuccessfulCall(C)") c=i} {print $c}')
	failed=$(tail -n 1 "$W/stat.csv" | awk -F';' -v h="$(head -n 1 "$W/stat.csv")" 'BEGIN{n=split(h,H,";"); for(i=1;i<=n;i++) if(H[i]=="FailedCall(C)") c=i} {print $c}')
	echo "calls: offered $CALLS, successful ${ok:-?}, failed ${failed:-?}; wall $(($(date +%s) - start)) s"
} | tee "$SRC/bench/report/soak.txt"

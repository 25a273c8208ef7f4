#!/usr/bin/env bash
# test_flood.sh - flood protection and overload (SPEC §13, issue 13), with the shipped defaults
# (limits.source_rate {rate: 200, burst: 400}):
#   SIPp UAC (127.0.0.1, CALLS calls at RATE/s: 3 requests a call, under the source rate)
#        --> referee --> SIPp UAS
#   blaster (127.0.0.2): BLAST OPTIONS at 5000/s, 25x the source rate (bounded count and time)
#   health checker (127.0.0.3): OPTIONS to referee one after another while the blast goes on
#   (at least 3 during it; each is a python start, slow on a loaded machine)
# Checks: the blaster gets (about) its burst plus its rate answered and nothing else (no
# amplification: no 400/407/503 for what was dropped), referee_flood_drops_total counts the rest,
# one log line names the source, every health check is answered 200, every legitimate call
# succeeds, a trusted source (127.0.0.4) is never limited, and 2 s after the blast ends the
# blaster's source is served again. Env: CALLS (default 600), RATE (default 30), BLAST (20000).
# it_check always returns 0, so "test && it_check ... || it_fail ..." is an if/else.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ops.sh"

CALLS=${CALLS:-600}
RATE=${RATE:-30}
BLAST=${BLAST:-20000}
it_need sipp python3 ss timeout curl
PORT=$(it_free_udp_port)
UAS_PORT=$(it_free_udp_port)
HTTP=$(ops_free_tcp_port)
[ "$PORT" != "$UAS_PORT" ] || it_die "free port picker returned a duplicate ($PORT $UAS_PORT)"
for ip in 127.0.0.2 127.0.0.3 127.0.0.4; do
	python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(('$ip', 0))" ||
		it_die "cannot bind $ip (loopback range)"
done

sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" $((CALLS / RATE + 90))
UAS_PID=$IT_LAST_PID
referee_config "$IT_WORK/referee.yaml" "$PORT" "$UAS_PORT" "metrics: {listen: 127.0.0.1:$HTTP}
trusted: [127.0.0.4/32]
rules:
  - {hosts: [example.com], users: [\"255xxxx\"], permissions: []}"
referee_start "$IT_WORK/referee.yaml" "$PORT"
ERR=$IT_WORK/referee.err
ops_wait_http "http://127.0.0.1:$HTTP/metrics" 200 10 || it_die "no /metrics on port $HTTP"
scrape() { curl -s -m 2 "http://127.0.0.1:$HTTP/metrics" >"$IT_WORK/$1.prom"; }

# blast SRC COUNT SECS OUT: ops_blast at 5000 a second (far over the source rate, well under what
# the kernel and referee take, so nothing is lost before referee sees it) into OUT.
blast() { ops_blast "$PORT" "$1" "$2" 5000 "$3" >"$4"; }

scrape before
drops0=$(ops_metric_sum "$IT_WORK/before.prom" referee_flood_drops_total)
opts0=$(ops_metric "$IT_WORK/before.prom" 'referee_requests_total{method="OPTIONS"}')

# ---- legitimate calls all along, the blast and the health checks in the middle ---------------
(sipp_uac_run calls "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" \
	-s 2551234 && echo "$SIPP_RC" >"$IT_WORK/calls.rc") &
CALLS_PID=$!
IT_PIDS+=("$CALLS_PID")
sleep 3
(n=0 ok=0; while [ ! -f "$IT_WORK/blast.done" ] && [ "$n" -lt 300 ]; do
	r=$(ops_sip --port "$PORT" --src 127.0.0.3 --method OPTIONS --ruri "sip:127.0.0.1:$PORT" --timeout 1)
	n=$((n + 1)); [ "$r" = 200 ] && ok=$((ok + 1))
	sleep 0.1
done; echo "$n $ok" >"$IT_WORK/health.out") &
HEALTH_PID=$!
blast 127.0.0.2 "$BLAST" 10 "$IT_WORK/blast.out"
touch "$IT_WORK/blast.done"
BLAST_END=$(date +%s.%N)
read -r sent got blast_secs <"$IT_WORK/blast.out"
wait "$HEALTH_PID"
read -r h_n h_ok <"$IT_WORK/health.out"
it_log "blast: sent=$sent answered=$got in ${blast_secs}s; health checks: $h_ok/$h_n answered"

# what the blaster may get: its burst, its rate over the blast (plus 1 s of slack), nothing else
allowed=$(python3 -c "print(int(400 + 200 * ($blast_secs + 1)))")
[ "$sent" -ge $((BLAST / 2)) ] || it_fail blast_sent "only $sent of $BLAST datagrams sent"
[ "$got" -le "$allowed" ] && [ "$got" -ge 300 ] &&
	it_check "blaster answered only within its bucket ($got answers to $sent requests, at most $allowed)" ||
	it_fail blaster_limited "$got answers to $sent requests (want 300..$allowed)"
scrape after
drops=$(( $(ops_metric_sum "$IT_WORK/after.prom" referee_flood_drops_total) - drops0 ))
# every OPTIONS referee received was either answered or dropped and counted
opts=$(( $(ops_metric "$IT_WORK/after.prom" 'referee_requests_total{method="OPTIONS"}') - opts0 ))
[ "$drops" -ge $((opts - got - h_n - 20)) ] && [ "$drops" -le "$sent" ] && [ "$drops" -ge $((sent - allowed - sent / 20)) ] &&
	it_check "drops counted (referee_flood_drops_total +$drops; $opts OPTIONS received, $got answered to the blaster)" ||
	it_fail drops_counted "referee_flood_drops_total +$drops, OPTIONS received $opts, sent $sent, answered $got"
n_lines=$(grep -c 'warn flood: .*src=127.0.0.2 ' "$ERR")
[ "$n_lines" = 1 ] && it_check "one log line for the source ($(grep 'warn flood:' "$ERR" | head -n 1 | cut -c 1-140))" ||
	it_fail one_log_line "$n_lines lines for 127.0.0.2"
[ "$h_n" -ge 3 ] && [ "$h_ok" = "$h_n" ] && it_check "health checks answered during the blast ($h_ok/$h_n)" ||
	it_fail health_checks "$h_ok of $h_n OPTIONS answered 200"

# ---- a trusted source is exempt --------------------------------------------------------------
blast 127.0.0.4 2000 5 "$IT_WORK/trusted.out"
read -r t_sent t_got _ <"$IT_WORK/trusted.out"
[ "$t_got" -ge $((t_sent * 95 / 100)) ] && it_check "trusted source not limited ($t_got answers to $t_sent)" ||
	it_fail trusted_exempt "$t_got answers to $t_sent requests from a trusted source"

# ---- recovery: 2 s after the blast ended, the source is served again --------------------------
python3 -c "import time; time.sleep(max(0.0, $BLAST_END + 2.0 - time.time()))"
r=$(ops_sip --port "$PORT" --src 127.0.0.2 --method OPTIONS --ruri "sip:127.0.0.1:$PORT" --timeout 1)
[ "$r" = 200 ] && it_check "blaster's source served again 2 s after the blast" ||
	it_fail recovery "OPTIONS from 127.0.0.2 2 s after the blast: '$r'"

wait "$CALLS_PID"
SIPP_DIR=$IT_WORK/calls
SIPP_RC=$(cat "$IT_WORK/calls.rc" 2>/dev/null || echo 1)
SIPP_OK=$(sipp_stat_last "$SIPP_DIR/stat.csv" 'SuccessfulCall(C)')
SIPP_FAILED=$(sipp_stat_last "$SIPP_DIR/stat.csv" 'FailedCall(C)')
sipp_uac_expect calls_during_blast "$CALLS"
referee_stop_check 10
it_kill "$UAS_PID"
it_finish

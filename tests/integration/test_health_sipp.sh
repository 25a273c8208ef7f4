#!/usr/bin/env bash
# test_health_sipp.sh - route destination sets and health probes (SPEC §10) with real SIP peers:
#   two SIPp sinks A (weight 3) and B (weight 1) behind routes.local, health.interval 1 s,
#   health.failures 2, health.successes 2, metrics on a free port.
#   1. CALLS calls through referee all succeed and spread by weight (A 65..85 %, B the rest);
#      referee_route_up is 1 for both.
#   2. B is stopped: referee logs "destination down" for B within interval x failures + 1 s
#      (the issue's target), referee_route_up for B turns 0, and CALLS more calls all succeed,
#      every INVITE at A (none is lost to the dead sink).
#   3. B is restarted on its port: "destination up" is logged, and CALLS calls all succeed with
#      B getting dialogs again.
#   4. Both sinks stopped: a request to our domain gets 503 with Retry-After (all down).
# Env: CALLS (default 400), RATE (default 100).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

CALLS=${CALLS:-400}
RATE=${RATE:-100}
INTERVAL=1
FAILURES=2
SUCCESSES=2
it_need sipp python3 ss timeout curl
PORT=$(it_free_udp_port)
A_PORT=$(it_free_udp_port)
B_PORT=$(it_free_udp_port)
M_PORT=$(it_free_tcp_port)
SINK_XML=$IT_SIPP_DIR/uas_probed.xml
SINK_SECS=300

# invites NAME: INVITEs SIPp run NAME received (its -trace_counts column *_INVITE_Recv)
invites() {
	local f
	f=$(find "$IT_WORK/$1" -maxdepth 1 -name '*_counts.csv' | head -n 1)
	[ -n "$f" ] || { echo 0; return; }
	awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /_INVITE_Recv$/) c = i; next }
		{ v = $c } END { print (c ? v + 0 : 0) }' "$f"
}
# counts_settle TOTAL NAME...: wait (at most 6 s) until the INVITEs of the sinks NAME... add up
# to TOTAL, then one more -fd period (1 s): SIPp writes its counts once a second
counts_settle() {
	local want=$1 n sum
	shift
	for _ in $(seq 30); do
		sum=0
		for n in "$@"; do sum=$((sum + $(invites "$n"))); done
		[ "$sum" -ge "$want" ] && break
		sleep 0.2
	done
	sleep 1.2
}
# route_up PORT: the referee_route_up value of the local destination on PORT ("NA" when absent)
route_up() {
	curl -s -m 5 "http://127.0.0.1:$M_PORT/metrics" |
		awk -v d="destination=\"udp://127.0.0.1:$1\"" 'index($0, "referee_route_up{route=\"local\"," d "}") == 1 { print $2; f = 1 } END { if (!f) print "NA" }'
}
# wait_log PATTERN SECONDS: wait until referee's stderr has a line matching PATTERN; prints the
# seconds waited (2 decimals), returns 1 on timeout
wait_log() {
	local t0 now
	t0=$(date +%s.%N)
	for _ in $(seq $(($2 * 20))); do
		if grep -qE "$1" "$IT_WORK/referee.err"; then
			now=$(date +%s.%N)
			awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f\n", b - a }'
			return 0
		fi
		sleep 0.05
	done
	return 1
}

sipp_uas_start sink_a "$A_PORT" "$SINK_XML" "$SINK_SECS"
SINK_A=$IT_LAST_PID
sipp_uas_start sink_b "$B_PORT" "$SINK_XML" "$SINK_SECS"
SINK_B=$IT_LAST_PID

referee_secret "$IT_WORK/secret"
printf 'users: []\n' >"$IT_WORK/users.yaml"
cat >"$IT_WORK/referee.yaml" <<EOF
listen: [udp://127.0.0.1:$PORT]
domains: [example.com]
secret_file: $IT_WORK/secret
threads: {receivers: 2, workers: 2}
routes:
  local:
    - {uri: udp://127.0.0.1:$A_PORT, weight: 3}
    - {uri: "sip:127.0.0.1:$B_PORT;transport=udp", weight: 1}
health: {interval: $INTERVAL, failures: $FAILURES, successes: $SUCCESSES}
store: {backend: file, file: $IT_WORK/users.yaml}
metrics: {listen: "127.0.0.1:$M_PORT"}
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: []}
EOF
referee_start "$IT_WORK/referee.yaml" "$PORT"
B_URI="sip:127.0.0.1:$B_PORT;transport=udp"
route_up_b() {
	curl -s -m 5 "http://127.0.0.1:$M_PORT/metrics" |
		awk -v d="destination=\"$B_URI\"" 'index($0, "referee_route_up{route=\"local\"," d "}") == 1 { print $2; f = 1 } END { if (!f) print "NA" }'
}
sleep 1.5 # the first probes are answered

# ---- 1. spread by weight --------------------------------------------------------------------
sipp_uac_run calls1 "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect calls_spread_over_two_sinks "$CALLS"
counts_settle "$CALLS" sink_a sink_b
a1=$(invites sink_a)
b1=$(invites sink_b)
if [ $((a1 + b1)) -eq "$CALLS" ] && [ "$a1" -ge $((CALLS * 65 / 100)) ] && [ "$a1" -le $((CALLS * 85 / 100)) ]; then
	it_check "spread_by_weight_3_to_1 (A $a1, B $b1 of $CALLS)"
else
	it_fail spread_by_weight_3_to_1 "A got $a1, B got $b1 of $CALLS INVITEs (want A 65..85 %)"
fi
ua=$(route_up "$A_PORT")
ub=$(route_up_b)
if [ "$ua" = 1 ] && [ "$ub" = 1 ]; then
	it_check "route_up_metric_both_up"
else
	it_fail route_up_metric_both_up "referee_route_up A=$ua B=$ub"
fi

# ---- 2. B stops: down within interval x failures + 1 s, calls keep succeeding at A ---------
it_kill "$SINK_B"
limit=$((INTERVAL * FAILURES + 1))
if dt=$(wait_log "destination down route=local destination=sip:127.0.0.1:$B_PORT" 10); then
	if awk -v d="$dt" -v l="$limit" 'BEGIN { exit !(d <= l) }'; then
		it_check "dead_sink_down_within_${limit}s (${dt}s)"
	else
		it_fail "dead_sink_down_within_${limit}s" "took ${dt}s"
	fi
else
	it_fail "dead_sink_down_within_${limit}s" "no 'destination down' line in 10 s"
fi
ub=$(route_up_b)
[ "$ub" = 0 ] && it_check "route_up_metric_b_down" || it_fail route_up_metric_b_down "referee_route_up B=$ub"
sipp_uac_run calls2 "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect calls_succeed_with_one_sink_down "$CALLS"
counts_settle $((a1 + CALLS)) sink_a
a2=$(invites sink_a)
if [ $((a2 - a1)) -eq "$CALLS" ]; then
	it_check "no_dialog_to_the_dead_sink (A got all $CALLS)"
else
	it_fail no_dialog_to_the_dead_sink "A got $((a2 - a1)) of $CALLS INVITEs"
fi

# ---- 3. B back: up again, gets dialogs ------------------------------------------------------
sipp_uas_start sink_b2 "$B_PORT" "$SINK_XML" "$SINK_SECS"
SINK_B=$IT_LAST_PID
if dt=$(wait_log "destination up route=local destination=sip:127.0.0.1:$B_PORT" 10); then
	it_check "restarted_sink_up (${dt}s)"
else
	it_fail restarted_sink_up "no 'destination up' line in 10 s"
fi
sipp_uac_run calls3 "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect calls_succeed_after_restart "$CALLS"
counts_settle $((a2 + CALLS)) sink_a sink_b2
b3=$(invites sink_b2)
a3=$(invites sink_a)
if [ "$b3" -gt 0 ] && [ $((b3 + a3 - a2)) -eq "$CALLS" ] && [ "$b3" -le $((CALLS * 40 / 100)) ]; then
	it_check "restarted_sink_gets_dialogs (B $b3 of $CALLS)"
else
	it_fail restarted_sink_gets_dialogs "B got $b3, A got $((a3 - a2)) of $CALLS"
fi
n_down=$(grep -c 'destination down' "$IT_WORK/referee.err")
n_up=$(grep -c 'destination up' "$IT_WORK/referee.err")
if [ "$n_down" -eq 1 ] && [ "$n_up" -eq 1 ]; then
	it_check "one_log_line_per_transition"
else
	it_fail one_log_line_per_transition "$n_down down and $n_up up lines (want 1 and 1)"
fi

# ---- 4. everything down: 503 with Retry-After ----------------------------------------------
it_kill "$SINK_A"
it_kill "$SINK_B"
wait_log "destination down route=local destination=udp://127.0.0.1:$A_PORT" 10 >/dev/null
wait_log "destination down route=local destination=sip:127.0.0.1:$B_PORT" 10 >/dev/null
reply=$(python3 - "$PORT" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(3)
lp = s.getsockname()[1]
msg = ("MESSAGE sip:2551234@example.com SIP/2.0\r\n"
       f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bKalldown1\r\n"
       "From: <sip:caller@it.invalid>;tag=ad1\r\nTo: <sip:2551234@example.com>\r\n"
       "Call-ID: all-down-1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
s.sendto(msg.encode(), ("127.0.0.1", int(sys.argv[1])))
try:
    data = s.recv(4096).decode(errors="replace")
except socket.timeout:
    print("timeout")
    sys.exit(0)
lines = data.split("\r\n")
ra = [l for l in lines if l.lower().startswith("retry-after:")]
print(lines[0] + " | " + (ra[0] if ra else "no Retry-After"))
EOF
)
if [[ "$reply" == "SIP/2.0 503 "*"| Retry-After: "[0-9]* ]]; then
	it_check "all_down_503_retry_after ($reply)"
else
	it_fail all_down_503_retry_after "got: $reply"
fi

referee_stop_check 10
it_finish

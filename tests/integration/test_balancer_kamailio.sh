#!/usr/bin/env bash
# test_balancer_kamailio.sh - referee behind a real SIP load balancer (SPEC §11): Kamailio 5.6
# (dispatcher, stateless, hash over the Call-ID, OPTIONS probes every second;
# tests/integration/kamailio/lb_dispatcher.cfg) on 127.0.0.2 in front of two referee instances
# R1 and R2 that share one secret and one redis-server and both advertise the balancer's address
# (listen[].advertise) with load_balancers: [127.0.0.2/32]. Behind them, routes.local is
# lib_transfer.sh's python listener, which answers to the Via sent-by as RFC 3261 §18.2.2 has it
# (a SIPp UAS answers a whole call to the address its first request came from, so it would
# answer a dead instance's dialog to the dead instance). SIPp clients talk to the balancer only.
#   1. trusted holds the balancer's address, yet an anonymous INVITE through it is challenged:
#      the client address (the Via below the balancer's) decides, not the balancer's.
#   2. authenticated calls (407, digest, 200, ACK, BYE) all succeed, spread over R1 and R2,
#      with the advertised address in Record-Route and Via at the sink.
#   3. REFER + the transferee's INVITE authorized by the grant (bench/sipp/refer_transfer.xml).
#   4. HOLD calls are set up and held; R1 (which record-routed some of them) is killed; new calls
#      started right after the kill all succeed (the balancer stops sending to R1 after its probe
#      times out; SIPp's retransmissions cover the gap), and the held calls' BYEs, dialogs
#      R1 record-routed included, are handled by R2 (every held call completes).
# Env: CALLS (default 40), HOLD (default 20).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_transfer.sh"

CALLS=${CALLS:-40}
HOLD=${HOLD:-20}
it_need sipp kamailio redis-server redis-cli python3 timeout curl
ADMIN=$REFEREE_BUILD_DIR/referee-admin
[ -x "$ADMIN" ] || it_die "no $ADMIN (build the referee-admin target)"
W=$IT_WORK
LB_IP=127.0.0.2
LB_PORT=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.2", 0)); print(s.getsockname()[1])')
UAS=$(it_free_udp_port)
P1=$(it_free_udp_port)
P2=$(it_free_udp_port)
M1=$(it_free_tcp_port)
M2=$(it_free_tcp_port)

# metric PORT SERIES: the value of SERIES (exact text before the value) at that instance
metric() {
	curl -s -m 5 "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print 0 }'
}
invites_at() { metric "$1" 'referee_requests_total{method="INVITE"}'; }
byes_at() { metric "$1" 'referee_requests_total{method="BYE"}'; }

# ---- Redis, users, the sink, two referee instances --------------------------------------------
xfer_redis_start
referee_secret "$W/secret"
instance_config() {
	cat >"$1" <<EOF
listen:
  - {url: udp://127.0.0.1:$2, advertise: "$LB_IP:$LB_PORT"}
domains: [example.com]
secret_file: $W/secret
threads: {receivers: 2, workers: 2}
routes: {local: udp://127.0.0.1:$UAS}
health: {interval: 1}
trusted: [$LB_IP/32]
load_balancers: [$LB_IP/32]
store: {backend: redis, redis: "redis://127.0.0.1:$XFER_RPORT"}
auth: {algorithms: [MD5]}
metrics: {listen: "127.0.0.1:$3"}
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
EOF
}
instance_config "$W/r1.yaml" "$P1" "$M1"
instance_config "$W/r2.yaml" "$P2" "$M2"
"$ADMIN" -c "$W/r1.yaml" user add 1001@example.com --password pw1001 --permission LocalDialing >"$W/admin.out" 2>&1 ||
	{ cat "$W/admin.out"; it_die "referee-admin user add failed"; }
xfer_write_tua
xfer_serve sink "$UAS" 300
xfer_referee_start R1 "$W/r1.yaml" "$P1"
xfer_referee_start R2 "$W/r2.yaml" "$P2"

# ---- the balancer -------------------------------------------------------------------------------
printf '1 sip:127.0.0.1:%s\n1 sip:127.0.0.1:%s\n' "$P1" "$P2" >"$W/dispatcher.list"
mkdir -p "$W/kam"
it_spawn kamailio kamailio -f "$REFEREE_SOURCE_DIR/tests/integration/kamailio/lb_dispatcher.cfg" -DD -E \
	-m 64 -M 8 -Y "$W/kam" -A "LB_IP=$LB_IP" -A "LB_PORT=$LB_PORT" -A "DS_LIST=\"$W/dispatcher.list\""
KAM_PID=$IT_LAST_PID
for _ in $(seq 100); do
	ss -Hlun "src $LB_IP:$LB_PORT" 2>/dev/null | grep -q . && break
	it_pid_alive "$KAM_PID" || break
	sleep 0.1
done
ss -Hlun "src $LB_IP:$LB_PORT" 2>/dev/null | grep -q . || { tail -n 20 "$W/kamailio.err"; it_die "kamailio did not bind $LB_IP:$LB_PORT"; }
# both instances answer the balancer's probes before traffic starts
for _ in $(seq 50); do
	[ "$(metric "$M1" 'referee_requests_total{method="OPTIONS"}')" -gt 0 ] &&
		[ "$(metric "$M2" 'referee_requests_total{method="OPTIONS"}')" -gt 0 ] && break
	sleep 0.2
done
sleep 1
export IT_SIPP_HOST=$LB_IP
authit_csv() { printf 'SEQUENTIAL\n1001;[authentication username=1001 password=pw1001];%s\n' "$2" >"$1"; }
authit_csv "$W/users.csv" 2551234

# ---- 1. the client address decides, not the balancer's --------------------------------------
sipp_uac_run anon 1 1 20 "$LB_PORT" "$IT_SIPP_DIR/uac_invite_407.xml" -s 2551234
sipp_uac_expect "anonymous INVITE via the trusted balancer is challenged (client address counts)" 1

# ---- 2. authenticated calls spread over both instances ---------------------------------------
i1=$(invites_at "$M1")
i2=$(invites_at "$M2")
sipp_uac_run calls "$CALLS" 20 $((CALLS / 20 + 60)) "$LB_PORT" "$IT_SIPP_DIR/auth_uac_call.xml" -inf "$W/users.csv"
sipp_uac_expect "authenticated calls through the balancer" "$CALLS"
d1=$(($(invites_at "$M1") - i1))
d2=$(($(invites_at "$M2") - i2))
if [ "$d1" -gt 0 ] && [ "$d2" -gt 0 ]; then
	it_check "calls spread over R1 and R2 ($d1 and $d2 INVITEs)"
else
	it_fail "calls spread over R1 and R2" "R1 got $d1, R2 got $d2 INVITEs"
fi
cat "$W"/sink/*-INVITE.sip "$W"/sink/*-ACK.sip "$W"/sink/*-BYE.sip 2>/dev/null | tr -d '\r' >"$W/sink/messages.txt"
n_rr=$(grep -c "^Record-Route: <sip:$LB_IP:$LB_PORT;lr;ra=" "$W/sink/messages.txt")
n_via=$(grep -c "^Via: SIP/2.0/UDP $LB_IP:$LB_PORT;branch=z9hG4bK-rf-" "$W/sink/messages.txt")
n_priv=$(grep -cE "^(Via|Record-Route):.*127\.0\.0\.1:($P1|$P2)" "$W/sink/messages.txt")
if [ "$n_rr" -ge "$CALLS" ] && [ "$n_via" -ge "$CALLS" ] && [ "$n_priv" -eq 0 ]; then
	it_check "advertised address in Via and Record-Route ($n_via Vias, $n_rr Record-Routes, no private address)"
else
	it_fail "advertised address in Via and Record-Route" "$n_via Vias, $n_rr signed Record-Routes with $LB_IP:$LB_PORT, $n_priv with a private address"
fi

# ---- 3. REFER + the transferee's INVITE with the grant, through the balancer ----------------
sipp_uac_run transfer 5 5 40 "$LB_PORT" "$REFEREE_SOURCE_DIR/bench/sipp/refer_transfer.xml" -inf "$W/users.csv"
sipp_uac_expect "REFER/407/REFER/202 + grant INVITE/200/ACK/BYE through the balancer" 5

# ---- 4. kill R1 with dialogs it record-routed still up -------------------------------------
i1=$(invites_at "$M1")
b2=$(byes_at "$M2")
d=$W/hold
mkdir -p "$d"
lport=$(it_free_udp_port)
(cd "$d" && exec timeout 90 sipp "$LB_IP:$LB_PORT" -sf "$IT_SIPP_DIR/auth_uac_call_hold.xml" -inf "$W/users.csv" \
	-i 127.0.0.1 -p "$lport" -m "$HOLD" -r 20 -d 8000 -nostdin -recv_timeout 20000 -trace_err -trace_msg -message_file "$d/messages.log" \
	-error_file "$d/errors.log" -trace_stat -stf "$d/stat.csv" -fd 1 </dev/null >"$d/out" 2>"$d/err") &
HOLD_PID=$!
IT_PIDS+=("$HOLD_PID")
sleep 4 # every held call is set up (20 calls at 20/s, each answered in milliseconds)
h1=$(($(invites_at "$M1") - i1))
kill -KILL "$(eval echo "\$XFER_PID_R1")"
it_log "R1 killed with $h1 of the held calls' INVITEs through it"
if [ "$h1" -gt 0 ]; then
	it_check "R1 record-routed some of the held dialogs ($h1 INVITEs)"
else
	it_fail "R1 record-routed some of the held dialogs" "R1 saw no INVITE of them"
fi
sipp_uac_run after_kill "$CALLS" 20 $((CALLS / 20 + 60)) "$LB_PORT" "$IT_SIPP_DIR/auth_uac_call.xml" -inf "$W/users.csv"
sipp_uac_expect "new calls right after R1 died" "$CALLS"
wait "$HOLD_PID"
hold_rc=$?
hold_ok=$(sipp_stat_last "$d/stat.csv" 'SuccessfulCall(C)')
hold_failed=$(sipp_stat_last "$d/stat.csv" 'FailedCall(C)')
if [ "$hold_rc" -eq 0 ] && [ "$hold_ok" = "$HOLD" ] && [ "$hold_failed" = 0 ]; then
	it_check "every held call completed: BYEs of R1's dialogs handled by R2 ($hold_ok/$HOLD)"
else
	it_fail "held calls completed after R1 died" "sipp exit $hold_rc, $hold_ok of $HOLD successful, $hold_failed failed (see $d/)"
	tail -n 5 "$d/errors.log" 2>/dev/null
fi
nb2=$(($(byes_at "$M2") - b2))
if [ "$nb2" -ge $((HOLD + CALLS)) ]; then
	it_check "R2 handled every BYE after the kill ($nb2 for $HOLD held + $CALLS new calls)"
else
	it_fail "R2 handled every BYE after the kill" "R2 saw $nb2 BYEs, want at least $((HOLD + CALLS))"
fi
grep -q "instance down" "$W/kamailio.err" && it_check "the balancer's probe took R1 out" ||
	it_fail "the balancer's probe took R1 out" "no 'instance down' in kamailio.err"

xfer_referee_stop R2
it_kill "$KAM_PID"
it_finish

#!/usr/bin/env bash
# test_call_sipp.sh - referee end to end with real SIP peers (SPEC §1, §4, §7):
#   SIPp UAC (untrusted source, From outside our domains) -> referee (2 receivers, 2 workers,
#   file store) -> routes.local = SIPp UAS; CALLS calls INVITE/200/ACK/BYE/200 must all succeed
#   (SIPp exit 0, -trace_stat counters), the UAS must have seen every call (-trace_counts) with a
#   signed Record-Route on each INVITE, referee's Via on top, Max-Forwards decremented and the
#   Route to referee popped from ACK/BYE; an OPTIONS ping to referee itself gets 200; SIGTERM
#   makes referee exit 0 within 5 s with no sanitizer report in its stderr.
# The UAC's 127.0.0.1 is deliberately NOT trusted: the call passes because the rules require
# nothing for 255xxxx, while 3xxxxxx needs LocalDialing and must be challenged (407).
# Env: CALLS (default 200), RATE (default 50). IT_PROXY=kamailio runs the SIPp part against
# the bench reference's Kamailio instead (harness development only; not a referee test).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

CALLS=${CALLS:-200}
RATE=${RATE:-50}
it_need sipp python3 ss timeout
PORT=$(it_free_udp_port)
UAS_PORT=$(it_free_udp_port)
[ "$PORT" != "$UAS_PORT" ] || UAS_PORT=$(it_free_udp_port)

# ---- the UAS behind referee -------------------------------------------------------------
sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" $((CALLS / RATE + 120)) -trace_msg -message_file "$IT_WORK/uas/messages.log"
UAS_PID=$IT_LAST_PID

# ---- referee ----------------------------------------------------------------------------
cat >"$IT_WORK/users.yaml" <<'EOF'
users:
  - {id: 1001@example.com, password: "pw1001", permissions: [LocalDialing]}
  - {id: 1002@example.com, password: "pw1002", permissions: []}
EOF
referee_config "$IT_WORK/referee.yaml" "$PORT" "$UAS_PORT" "$(cat <<'EOF'
trusted: []
auth:
  algorithms: [SHA-256, MD5]
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: []}
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
  - {hosts: [example.com], users: ["011."], permissions: [InternationalDialing]}
EOF
)"

proxy_start "$IT_WORK/referee.yaml" "$PORT" "$UAS_PORT"

# ---- OPTIONS ping to referee itself -------------------------------------------------------
sipp_uac_run options 3 10 20 "$PORT" "$IT_SIPP_DIR/uac_options.xml"
sipp_uac_expect options_ping_200 3

# ---- bounded calls through referee ---------------------------------------------------------
sipp_uac_run calls "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect "calls_through_referee" "$CALLS"

# every call reached the UAS and completed there (its -trace_stat/-trace_counts files are
# written every second; wait up to 15 s for the last call's 4 s linger to end)
for _ in $(seq 30); do
	uas_ok=$(sipp_stat_last "$IT_WORK/uas/stat.csv" 'SuccessfulCall(C)')
	[ "$uas_ok" = "$CALLS" ] && break
	sleep 0.5
done
uas_inv=$(sipp_count uas 0_INVITE_Recv)
if [ "$uas_ok" = "$CALLS" ] && [ "$uas_inv" = "$CALLS" ]; then
	it_check "uas_completed_every_call ($uas_ok calls, $uas_inv INVITEs)"
else
	it_fail uas_completed_every_call "UAS completed $uas_ok of $CALLS calls, received $uas_inv INVITEs"
fi

# what referee relayed (SPEC §1): a signed Record-Route (;lr;ra=) on every INVITE, Max-Forwards
# decremented, its own Via above the caller's, and the Route pointing at referee popped from
# ACK/BYE (they reach the UAS with no Route left)
tr -d '\r' <"$IT_WORK/uas/messages.log" >"$IT_WORK/uas/messages.txt"
n_rr=$(awk '/^INVITE /{inv = 1} inv && /^Record-Route:.*;lr.*ra=/{n++; inv = 0} END {print n + 0}' "$IT_WORK/uas/messages.txt")
n_mf=$(grep -c '^Max-Forwards: 69$' "$IT_WORK/uas/messages.txt")
n_via=$(awk '/^(INVITE|ACK|BYE) /{req = 1; nv = 0; next} req && /^Via:/{nv++} req && /^$/{if (nv >= 2) n++; req = 0} END {print n + 0}' "$IT_WORK/uas/messages.txt")
n_route=$(grep -c '^Route:' "$IT_WORK/uas/messages.txt")
n_req=$(grep -cE '^(INVITE|ACK|BYE) ' "$IT_WORK/uas/messages.txt")
if [ "$n_rr" -ge "$CALLS" ] && [ "$n_via" -eq "$n_req" ] && [ "$n_mf" -eq "$n_req" ] && [ "$n_route" -eq 0 ]; then
	it_check "relayed_requests_well_formed ($n_req requests: $n_rr signed Record-Routes, 2 Vias, Max-Forwards 69, no Route)"
else
	it_fail relayed_requests_well_formed "of $n_req requests at the UAS: $n_rr INVITEs with ;lr;ra= Record-Route, $n_via with 2+ Vias, $n_mf with Max-Forwards 69, $n_route with a Route left"
fi

# ---- a number that needs a permission is challenged for the anonymous caller ---------------
if [ "${IT_PROXY:-referee}" != kamailio ]; then
	sipp_uac_run challenge 1 1 20 "$PORT" "$IT_SIPP_DIR/uac_invite_407.xml" -s 3456789
	sipp_uac_expect anonymous_local_dialing_challenged_407 1
fi

# ---- SIGTERM: drain, exit 0, no sanitizer report ----------------------------------------
referee_stop_check 5
it_kill "$UAS_PID"
it_finish

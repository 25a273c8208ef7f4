#!/usr/bin/env bash
# test_stream_baresip.sh - a real TLS user agent through referee (SPEC §9, issue 10): baresip 1.0
# (Debian's baresip-core, headless as in lib_ua.sh) with the account
# <sip:1001@example.com;transport=tls>, its outbound proxy referee's tls:// listener, the test
# CA as sip_cafile. It dials 2551234 (a number that needs LocalDialing); referee challenges the
# INVITE over TLS (407), baresip answers with MD5 digest for 1001 (users file), referee relays
# the call over UDP to a SIPp UAS, which answers; baresip hangs up after a few seconds (BYE).
# Checked: the sink received the INVITE and BYE of one successful call; baresip's INVITE left
# with Via SIP/2.0/TLS, was challenged and then carried Proxy-Authorization; baresip reports the
# call established; referee accepted a TLS connection and counts one accepted digest;
# SIGTERM: referee exits 0, no sanitizer report.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"

it_need sipp baresip python3 ss timeout openssl curl
stream_ua_referee "$IT_SIPP_DIR/uas.xml"
metric() { authit_metric "$MPORT" "$@"; }

# ---- baresip over TLS ----------------------------------------------------------------------
D=$IT_WORK/ua
ua_baresip_config "$D" "$UA_PORT" "$TPORT" 1001
printf 'sip_cafile\t\t%s\n' "$C/ca.pem" >>"$D/config"
printf '<sip:1001@example.com;transport=tls>;auth_pass=%s;regint=0;audio_codecs=pcmu;outbound="sip:127.0.0.1:%s;transport=tls"\n' \
	"$STREAM_UA_PW" "$TPORT" >"$D/accounts"
b_tls=$(metric referee_connections_accepted_total 'transport="tls"')
b_chal=$(metric referee_auth_challenges_total)
b_afail=$(metric referee_auth_failures_total)
# -t 8: baresip quits after 8 s and hangs up the established call (BYE) on the way out
ua_baresip_start ua "$D" "$UA_PORT" 8 -e "/dial sip:2551234@example.com"
UA_PID=$IT_LAST_PID
if ua_wait_trace ua '^1001@example.com: Call established: sip:2551234@example.com' 15; then
	it_check "baresip_tls_call_established"
else
	it_fail baresip_tls_call_established "no 'Call established' in $IT_WORK/ua.out ($(ua_trace ua | grep -m1 'session closed'))"
fi
wait "$UA_PID"
ua_trace ua >"$IT_WORK/ua.trace"
for _ in $(seq 40); do it_pid_alive "$SINK_PID" || break; sleep 0.25; done
it_kill "$SINK_PID"
uas_ok=$(sipp_stat_last "$IT_WORK/sink/stat.csv" 'SuccessfulCall(C)')
uas_inv=$(sipp_count sink 0_INVITE_Recv)
uas_bye=$(sipp_count sink 4_BYE_Recv)
if [ "$uas_ok" = 1 ] && [ "$uas_inv" = 1 ] && [ "$uas_bye" = 1 ]; then
	it_check "udp_sink_answered_one_call (INVITE and BYE received, call successful)"
else
	it_fail udp_sink_answered_one_call "sink: $uas_inv INVITEs, $uas_bye BYEs, $uas_ok successful calls"
fi
# what baresip sent and got, in its SIP trace: requests over TLS to referee, challenged once
to_referee="^TLS 127.0.0.1:[0-9]+ -> 127.0.0.1:$TPORT\$"
n_tls_req=$(awk -v re="$to_referee" '$0 ~ re { getline; print }' "$IT_WORK/ua.trace" | grep -cE '^(INVITE|ACK|BYE) ')
n_inv_auth=$(awk '/^INVITE /{inv = 1} inv && /^Proxy-Authorization: Digest username="1001", realm="example.com"/{n++} /^$/{inv = 0} END {print n + 0}' "$IT_WORK/ua.trace")
n_407=$(grep -c '^SIP/2.0 407 ' "$IT_WORK/ua.trace")
n_via=$(grep -cE '^Via: SIP/2.0/TLS 127.0.0.1:[0-9]+;branch=' "$IT_WORK/ua.trace")
if [ "$n_tls_req" -ge 4 ] && [ "$n_407" -eq 1 ] && [ "$n_inv_auth" -eq 1 ] && [ "$n_via" -ge 4 ]; then
	it_check "baresip_over_tls_digest ($n_tls_req requests over TLS to referee: INVITE, ACK of the 407, INVITE with Proxy-Authorization, ACK, BYE)"
else
	it_fail baresip_over_tls_digest "requests over TLS $n_tls_req, 407s $n_407, INVITEs with credentials $n_inv_auth, TLS Vias $n_via (see $IT_WORK/ua.trace)"
fi
# the Record-Route baresip learns for referee's TLS side: a sip: URI with transport=tls
rr=$(grep -m1 '^Record-Route: ' "$IT_WORK/ua.trace")
if grep -qE "<sip:127.0.0.1:$TPORT;transport=tls;lr;ra=[^>]+>" <<<"$rr"; then
	it_check "tls_side_record_route_sip_transport_tls"
else
	it_fail tls_side_record_route_sip_transport_tls "$rr"
fi
d_tls=$(($(metric referee_connections_accepted_total 'transport="tls"') - b_tls))
d_chal=$(($(metric referee_auth_challenges_total) - b_chal))
d_afail=$(($(metric referee_auth_failures_total) - b_afail))
if [ "$d_tls" -ge 1 ] && [ "$d_chal" -eq 1 ] && [ "$d_afail" -eq 0 ]; then
	it_check "metrics_tls_accepted_one_challenge (tls connections +$d_tls, challenges +1, auth failures +0)"
else
	it_fail metrics_tls_accepted_one_challenge "tls connections +$d_tls, challenges +$d_chal, auth failures +$d_afail"
fi

referee_stop_check 10
it_finish

#!/usr/bin/env bash
# test_stream_baresip_transfer.sh - a blind transfer where the transferee is a real TLS user agent
# (SPEC §5, §9, issue 10): baresip 1.0 (lib_ua.sh's headless config) with the account
# <sip:transferee@127.0.0.1;transport=tls>, its TLS certificate the test server.pem (SAN
# IP:127.0.0.1), referee's tls:// listener as outbound proxy. The SIPp transferor (UDP, MD5
# digest 1001, LocalDialing) calls sip:transferee@127.0.0.1:TLSPORT;transport=tls through
# referee, which opens TLS to baresip and verifies it against 127.0.0.1 (tls.ca_file); an
# in-dialog REFER (Refer-To 2550001, a number that needs LocalDialing) is challenged, answered,
# rewritten with a grant and relayed over that TLS connection; baresip sends its INVITE over TLS to
# referee, which authorizes it by the grant alone and relays it over UDP to the SIPp target.
# Checked: the transferor's scenario (NOTIFY sipfrag 200), the target answered the transferred
# call, baresip's INVITE left over TLS with the refgrant, referee_transfer_grants_total accepted 1;
# SIGTERM: exit 0, no sanitizer report.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"

TARGET=2550001
it_need sipp baresip python3 ss timeout openssl curl
stream_ua_referee "$IT_SIPP_DIR/ua_target.xml"

D=$IT_WORK/transferee
ua_baresip_config "$D" "$UA_PORT" "$TPORT" transferee
(umask 077 && cat "$C/server.pem" "$C/server.key" >"$D/cert.pem")
printf 'sip_certificate\t\t%s\nsip_cafile\t\t%s\n' "$D/cert.pem" "$C/ca.pem" >>"$D/config"
printf '<sip:transferee@127.0.0.1;transport=tls>;regint=0;answermode=auto;audio_codecs=pcmu;outbound="sip:127.0.0.1:%s;transport=tls"\n' \
	"$TPORT" >"$D/accounts"
ua_baresip_start transferee "$D" "$UA_PORT" 40
UA_PID=$IT_LAST_PID
stream_wait_tcp $((UA_PORT + 1)) 10 || it_die "baresip does not listen on tls 127.0.0.1:$((UA_PORT + 1))"

sipp_uac_run transferor 1 1 40 "$PORT" "$IT_SIPP_DIR/ua_transferor.xml" \
	-au 1001 -ap "$STREAM_UA_PW" -key user 1001 \
	-key ruri "sip:transferee@127.0.0.1:$((UA_PORT + 1));transport=tls" -key referto "<sip:$TARGET@example.com>" \
	-trace_msg -message_file "$IT_WORK/transferor/messages.log" \
	-trace_logs -log_file "$IT_WORK/transferor/log.txt"
sipp_uac_expect transferor_call_refer_bye 1
frags=$(grep -o 'NOTIFY sipfrag SIP/2.0 [0-9]*' "$IT_WORK/transferor/log.txt" 2>/dev/null | awk '{print $NF}' | paste -sd, -)
[ "${frags##*,}" = 200 ] && it_check "transfer_notified_200 (sipfrags $frags)" || it_fail transfer_notified_200 "NOTIFY sipfrags: '$frags'"
for _ in $(seq 40); do it_pid_alive "$SINK_PID" || break; sleep 0.25; done
it_kill "$SINK_PID"
tgt_ok=$(sipp_stat_last "$IT_WORK/sink/stat.csv" 'SuccessfulCall(C)')
tgt_inv=$(sipp_count sink 0_INVITE_Recv)
[ "$tgt_ok" = 1 ] && [ "$tgt_inv" = 1 ] && it_check "target_answered_transferred_call" ||
	it_fail target_answered_transferred_call "target: $tgt_inv INVITEs, $tgt_ok successful calls"
# baresip's SIP trace: a "TLS FROM -> TO" line, then the message
ua_trace transferee >"$IT_WORK/transferee.trace"
tls_msgs() { # TO_PORT: the first lines of the messages baresip sent or got over TLS toward TO_PORT
	awk -v re="^TLS 127.0.0.1:[0-9]+ -> 127.0.0.1:$1\$" '$0 ~ re { getline; print }' "$IT_WORK/transferee.trace"
}
n_in_inv=$(tls_msgs $((UA_PORT + 1)) | grep -c "^INVITE sip:transferee@127.0.0.1:$((UA_PORT + 1));transport=tls SIP/2.0$")
n_in_refer=$(tls_msgs $((UA_PORT + 1)) | grep -c '^REFER sip:transferee')
n_grant=$(grep -cE '^Refer-To: <sip:'"$TARGET"'@example.com;refgrant=v1\.' "$IT_WORK/transferee.trace")
n_out_inv=$(tls_msgs "$TPORT" | grep -cE '^INVITE sip:'"$TARGET"'@example.com;refgrant=v1\.')
if [ "$n_in_inv" -eq 1 ] && [ "$n_in_refer" -eq 1 ] && [ "$n_grant" -eq 1 ] && [ "$n_out_inv" -ge 1 ]; then
	it_check "transferee_over_tls (INVITE and the rewritten REFER reached baresip over TLS, its INVITE with the grant left over TLS)"
else
	it_fail transferee_over_tls "INVITEs in over TLS $n_in_inv, REFERs in $n_in_refer, Refer-To with refgrant $n_grant, INVITEs out with refgrant $n_out_inv (see $IT_WORK/transferee.trace)"
fi
acc=$(authit_metric "$MPORT" referee_transfer_grants_total 'result="accepted"')
cf=$(authit_metric "$MPORT" referee_connect_failures_total 'transport="tls"')
[ "$acc" = 1 ] && [ "$cf" = 0 ] && it_check "metrics_grant_accepted_no_tls_connect_failure" ||
	it_fail metrics_grant_accepted_no_tls_connect_failure "grants accepted $acc, tls connect failures $cf"
it_kill "$UA_PID"
referee_stop_check 10
it_finish

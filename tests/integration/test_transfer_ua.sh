#!/usr/bin/env bash
# test_transfer_ua.sh - transfer authorization end to end with a real user agent (SPEC §5):
# baresip 1.0 (Debian's baresip-core, headless, no credentials, referee as outbound proxy) is
# the transferee. A SIPp transferor (digest MD5 user XFER_USER, LocalDialing) calls it through
# referee, sends an in-dialog REFER with Refer-To <sip:2550001@example.com> (a number that
# needs LocalDialing), answers the 407; referee rewrites the Refer-To with a grant; baresip
# answers 202 and places its own INVITE through referee, which authorizes it with the grant
# (the transferor's identity) and relays it to the SIPp target (routes.local) without the
# grant. Checked: the transfer succeeds (NOTIFY sipfrag 200), the UA saw one REFER only (the
# challenged one never reached it), the target's INVITE has no refgrant and no
# X-Sipx-Authidentity, referee_transfer_grants_total{result="accepted"} is 1; and first a
# second baresip with no grant dialing the same number directly gets 407 and never reaches
# the target. SIGTERM: referee exits 0, no sanitizer report.
# baresip 1.0 copies the whole Refer-To URI, its X-Sipx-Authidentity URI header included,
# into its Request-URI (and eats the header's %XX escapes as printf conversions). referee
# tolerates headers in a Request-URI (RFC 4475 escruri), strips them when forwarding, and
# reads the refgrant URI parameter that stands before them: that is what this test proves
# with the default transferor 1001 (both grant carriers fit in its 253-character Refer-To).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ua.sh"

XFER_USER=${XFER_USER:-1001}
TARGET=2550001
it_need sipp baresip python3 ss timeout curl

PORT=$(it_free_udp_port)
TGT_PORT=$(it_free_udp_port)
UA_PORT=$(ua_free_sip_port)
NOGRANT_PORT=$(ua_free_sip_port)
METRICS_PORT=$(ua_free_tcp_port)
[ "$(printf '%s\n' "$PORT" "$TGT_PORT" "$UA_PORT" "$NOGRANT_PORT" | sort -u | wc -l)" -eq 4 ] ||
	it_die "free port picks collided, run again"

# ---- the transfer target behind referee (routes.local) ----------------------------------
sipp_uas_start target "$TGT_PORT" "$IT_SIPP_DIR/ua_target.xml" 90 -m 1 \
	-trace_msg -message_file "$IT_WORK/target/messages.log"
TGT_PID=$IT_LAST_PID

# ---- referee: nothing trusted, 255xxxx needs LocalDialing, MD5 only (SIPp 3.6) -----------
cat >"$IT_WORK/users.yaml" <<EOF
users:
  - {id: $XFER_USER@example.com, password: "pw-xfer", permissions: [LocalDialing]}
EOF
referee_config "$IT_WORK/referee.yaml" "$PORT" "$TGT_PORT" "$(cat <<EOF
trusted: []
auth:
  algorithms: [MD5]
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: [LocalDialing]}
metrics:
  listen: 127.0.0.1:$METRICS_PORT
EOF
)"
referee_start "$IT_WORK/referee.yaml" "$PORT"
ua_metrics_wait "$METRICS_PORT" 10 || it_die "referee /health not answering on 127.0.0.1:$METRICS_PORT"

# ---- negative: a UA without a grant dials the target directly -----------------------------
ua_baresip_config "$IT_WORK/nogrant" "$NOGRANT_PORT" "$PORT" nogrant
ua_baresip_start nogrant "$IT_WORK/nogrant" "$NOGRANT_PORT" 20 -e "/dial sip:$TARGET@example.com"
NOGRANT_PID=$IT_LAST_PID
if ua_wait_trace nogrant '^SIP/2.0 407 ' 10; then
	it_check "ua_without_grant_challenged_407"
else
	it_fail ua_without_grant_challenged_407 "no 407 in $IT_WORK/nogrant.out"
fi
# baresip answers the challenge with its empty credentials, is challenged again and gives up
if ua_wait_trace nogrant '^sip:[0-9]+@example.com: session closed: 407 ' 10; then
	n_ok=$(ua_trace nogrant | grep -cE '^SIP/2.0 200 ' || true)
	if [ "$n_ok" -eq 0 ]; then
		it_check "ua_without_grant_call_closed_407"
	else
		it_fail ua_without_grant_call_closed_407 "$n_ok 200 responses seen by the grantless UA"
	fi
else
	it_fail ua_without_grant_call_closed_407 "baresip did not report 'session closed: 407' (see $IT_WORK/nogrant.out)"
fi
it_kill "$NOGRANT_PID"

# ---- the transferee --------------------------------------------------------------------
ua_baresip_config "$IT_WORK/transferee" "$UA_PORT" "$PORT" transferee
ua_baresip_start transferee "$IT_WORK/transferee" "$UA_PORT" 60
UA_PID=$IT_LAST_PID

# ---- the transferor: call, REFER, NOTIFYs, BYE ------------------------------------------
sipp_uac_run transferor 1 1 40 "$PORT" "$IT_SIPP_DIR/ua_transferor.xml" \
	-au "$XFER_USER" -ap pw-xfer -key user "$XFER_USER" \
	-key ruri "sip:transferee@127.0.0.1:$UA_PORT" -key referto "<sip:$TARGET@example.com>" \
	-trace_msg -message_file "$IT_WORK/transferor/messages.log" \
	-trace_logs -log_file "$IT_WORK/transferor/log.txt"
sipp_uac_expect transferor_call_refer_bye 1
frags=$(grep -o 'NOTIFY sipfrag SIP/2.0 [0-9]*' "$IT_WORK/transferor/log.txt" 2>/dev/null | awk '{print $NF}' | paste -sd, -)
if [ "${frags##*,}" = 200 ]; then
	it_check "transfer_notified_200 (sipfrags $frags)"
else
	it_fail transfer_notified_200 "NOTIFY sipfrags: '${frags}'"
fi
n202=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /_202_Recv$/) c = i; next }
	{ v = $c } END { print (c ? v + 0 : "NA") }' "$IT_WORK"/transferor/*_counts.csv 2>/dev/null)
if [ "$n202" = 1 ]; then
	it_check "refer_accepted_202"
else
	it_fail refer_accepted_202 "202 received $n202 times"
fi

# ---- the target: completed the call, saw the INVITE without the grant ----------------------
for _ in $(seq 40); do it_pid_alive "$TGT_PID" || break; sleep 0.25; done
it_kill "$TGT_PID"
tgt_ok=$(sipp_stat_last "$IT_WORK/target/stat.csv" 'SuccessfulCall(C)')
tgt_inv=$(sipp_count target 0_INVITE_Recv)
if [ "$tgt_ok" = 1 ] && [ "$tgt_inv" = 1 ]; then
	it_check "target_answered_transferred_call"
else
	it_fail target_answered_transferred_call "target: $tgt_inv INVITEs, $tgt_ok successful calls"
fi
ua_sipp_requests "$IT_WORK/target/messages.log" INVITE >"$IT_WORK/target/invites.txt"
ruri=$(awk '/^INVITE /{print $2; exit}' "$IT_WORK/target/invites.txt")
if [ "$ruri" = "sip:$TARGET@example.com" ]; then
	it_check "target_ruri_without_refgrant ($ruri)"
else
	it_fail target_ruri_without_refgrant "Request-URI '$ruri'"
fi
n_hdr=$(grep -ciE '^(X-Sipx-Authidentity|Proxy-Authorization):' "$IT_WORK/target/invites.txt" || true)
if [ -n "$ruri" ] && [ "$n_hdr" -eq 0 ]; then
	it_check "target_invite_without_token_headers"
else
	it_fail target_invite_without_token_headers "INVITE '$ruri' with $n_hdr X-Sipx-Authidentity/Proxy-Authorization headers"
fi
n_from=$(grep -ciE '^From:.*sip:transferee@' "$IT_WORK/target/invites.txt" || true)
if [ "$n_from" -ge 1 ]; then
	it_check "target_invite_from_transferee"
else
	it_fail target_invite_from_transferee "no INVITE from sip:transferee@ at the target"
fi

# ---- what the UA saw and sent --------------------------------------------------------------
ua_trace transferee >"$IT_WORK/transferee.trace"
n_refer=$(grep -cE '^REFER sip:' "$IT_WORK/transferee.trace" || true)
n_grant=$(grep -cE '^Refer-To: <sip:'"$TARGET"'@example.com;refgrant=v1\.' "$IT_WORK/transferee.trace" || true)
if [ "$n_refer" -eq 1 ] && [ "$n_grant" -eq 1 ]; then
	it_check "ua_got_one_rewritten_refer"
else
	it_fail ua_got_one_rewritten_refer "$n_refer REFERs reached the UA, $n_grant with a refgrant Refer-To"
fi
n_inv=$(grep -cE '^INVITE sip:'"$TARGET"'@example.com;refgrant=v1\.[^ ?;]+(\?[^ ]*)? SIP/2.0$' "$IT_WORK/transferee.trace" || true)
if [ "$n_inv" -ge 1 ]; then
	it_check "ua_invite_carries_grant"
else
	it_fail ua_invite_carries_grant "no INVITE sip:$TARGET@example.com;refgrant=... sent by the UA"
fi

# ---- referee's counters ------------------------------------------------------------------
m_acc=$(ua_metric "$METRICS_PORT" 'referee_transfer_grants_total{result="accepted"}')
m_iss=$(ua_metric "$METRICS_PORT" 'referee_transfer_grants_total{result="issued"}')
m_rw=$(ua_metric "$METRICS_PORT" referee_transfer_rewrites_total)
m_ch=$(ua_metric "$METRICS_PORT" referee_transfer_challenges_total)
if [ "$m_acc" = 1 ] && [ "$m_iss" = 1 ] && [ "$m_rw" = 1 ] && [ "$m_ch" = 1 ]; then
	it_check "metrics_grant_issued_accepted (accepted=1 issued=1 rewrites=1 challenges=1)"
else
	it_fail metrics_grant_issued_accepted "accepted=$m_acc issued=$m_iss rewrites=$m_rw challenges=$m_ch"
fi

it_kill "$UA_PID"
referee_stop_check 5
it_finish

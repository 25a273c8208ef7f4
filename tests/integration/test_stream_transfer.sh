#!/usr/bin/env bash
# test_stream_transfer.sh - a blind transfer across transports (SPEC §5, §9): the transferor
# (SIPp, user 1001 with LocalDialing) speaks TLS to referee through stunnel; its REFER is
# challenged (407) and answered with MD5 digest over TLS, rewritten with a grant and relayed
# over UDP to the transferee (python3 UA of lib_transfer.sh); the transferee's INVITE carrying
# the grant comes over UDP, is authorized by the grant alone and reaches the target (200, ACK,
# BYE). Digest and grants work the same on every transport.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"
. "$(dirname "$0")/lib_transfer.sh"

it_need sipp python3 ss timeout openssl stunnel
W=$IT_WORK
PORT=$(stream_free_port)
TPORT=$(authit_free_tcp_port)
SA=$(authit_free_tcp_port)
TEE=$(it_free_udp_port)
TGT=$(it_free_udp_port)
C=$W/certs
stream_certs "$C"
xfer_write_tua
xfer_serve tee "$TEE" 120
xfer_serve tgt "$TGT" 120

cat >"$W/users.yaml" <<'EOF'
users:
  - {id: 1001@example.com, password: "pw1001", permissions: [LocalDialing]}
EOF
referee_config "$W/referee.yaml" "$PORT" "$TGT" "$(cat <<EOF
auth: {algorithms: [MD5]}
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
tls: {certificate: $C/server.pem, private_key: $C/server.key}
EOF
)"
sed -i "s|^listen: .*|listen: [udp://127.0.0.1:$PORT, tls://127.0.0.1:$TPORT]|" "$W/referee.yaml"
referee_start "$W/referee.yaml" "$PORT"
stream_wait_tcp "$TPORT" 10 || it_die "referee does not listen on tls 127.0.0.1:$TPORT"
cat >"$W/tunnel.conf" <<EOF
foreground = yes
pid =
output = $W/tunnel.log
[sip]
client = yes
accept = 127.0.0.1:$SA
connect = 127.0.0.1:$TPORT
CAfile = $C/ca.pem
verifyChain = yes
checkHost = proxy.test
EOF
it_spawn tunnel stunnel "$W/tunnel.conf"
stream_wait_tcp "$SA" 10 || it_die "stunnel did not listen on $SA"

# ---- the transferor's REFER over TLS --------------------------------------------------------
TEE_URI=sip:transferee@127.0.0.1:$TEE
stream_sipp_uac_run refer 1 1 20 "$SA" "$IT_SIPP_DIR/transfer_refer_auth.xml" -au 1001 -ap pw1001 \
	-key user 1001 -key ruri "$TEE_URI" -key referto "<sip:2550001@example.com>" -t t1 -max_socket 10
sipp_uac_expect "refer_over_tls: REFER -> 407 -> REFER with MD5 credentials -> 202" 1
f=$(xfer_last_req tee REFER)
RT=$([ -n "$f" ] && xfer_hdr "$f" Refer-To)
URI=${RT#<}
URI=${URI%%\?*}
URI=${URI%>}
if [[ $URI =~ ^sip:2550001@example\.com\;refgrant=v1\.[A-Za-z0-9_.-]+$ ]]; then
	it_check "refer_relayed_over_udp_with_grant ($(head -c 60 <<<"$URI")...)"
else
	it_fail refer_relayed_over_udp_with_grant "transferee got Refer-To '$RT'"
fi
[ -n "$f" ] && grep -q '^Via: SIP/2.0/UDP 127.0.0.1:'"$PORT"';branch=' "$f" &&
	it_check "refer_via_names_udp_toward_transferee" || it_fail refer_via_names_udp_toward_transferee "$(grep -m2 '^Via' "$f" 2>/dev/null)"

# ---- the transferee's INVITE over UDP, authorized by the grant alone --------------------------
out=$(xfer_tua call --proxy "$PORT" --ruri "$URI" --callid "x1-$$@it" --fromtag x1 --branch z9hG4bKx1 --out "$W/x1")
if [ "${out//$'\n'/ }" = "final 200 OK bye 200 OK" ]; then
	it_check "transferee_invite_over_udp_authorized_by_grant (200, BYE 200)"
else
	it_fail transferee_invite_over_udp_authorized_by_grant "$out"
fi
referee_stop_check 10
it_finish

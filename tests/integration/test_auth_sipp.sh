#!/usr/bin/env bash
# test_auth_sipp.sh - digest authentication and permission rules end to end on the file
# store (SPEC §3, §4, §7). Two referee instances on 127.0.0.1 share one users file
# (generated here by the benchmark's rule, half with ha1_md5, half with passwords):
#  - R1, auth.algorithms: [MD5], metrics.listen: SIPp 3.6.1 answers only MD5 challenges and
#    takes the FIRST Proxy-Authenticate, so SIPp talks to R1. SIPp UAC -> R1 -> SIPp UAS:
#    (a) authenticated calls all succeed, (b) missing permission -> 403 Requires ...,
#    (c) wrong password -> 407 again, nothing reaches the UAS (UAS counts, referee_forwarded_total),
#    (d) an anonymous call from outside our domains to a number needing nothing passes.
#  - R2, default algorithms, auth.nonce_ttl 10, auth.failure_limit {count 5, window 10}:
#    exact header checks with sipauth.py (lib_auth.sh): (e) the same nc replayed on another
#    request is refused, (f) 407 content (SHA-256 then MD5, realm/nonce/opaque/qop, stale=true
#    for an expired genuine nonce, not for a forged one), (g) the failure limiter.
# Bounded: every server is killed by PID by the EXIT trap, every SIPp run has -m and timeout.
# Env: CALLS (default 20), RATE (default 10).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"

CALLS=${CALLS:-20}
RATE=${RATE:-10}
it_need sipp python3 ss timeout md5sum
W=$IT_WORK

# ---- users file: 1000..1009, password pw<user>, permissions by the benchmark's rule ------
{
	echo "users:"
	for u in $(seq 1000 1009); do
		perms=$(authit_bench_perms "$u" | sed 's/ /, /g')
		if [ $((u % 2)) -eq 0 ]; then
			echo "  - {id: $u@example.com, ha1_md5: $(authit_ha1_md5 "$u" "pw$u"), permissions: [$perms]}"
		else
			echo "  - {id: $u@example.com, password: \"pw$u\", permissions: [$perms]}"
		fi
	done
} >"$W/users.yaml"

RULES=$(
	cat <<'EOF'
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
  - {hosts: [example.com], users: ["011."], permissions: [InternationalDialing]}
  - {hosts: [example.com], users: ["1xxx"], permissions: []}
EOF
)

R1_PORT=$(it_free_udp_port)
R2_PORT=$(it_free_udp_port)
UAS_PORT=$(it_free_udp_port)
M_PORT=$(authit_free_tcp_port)
[ "$R1_PORT" != "$R2_PORT" ] && [ "$R2_PORT" != "$UAS_PORT" ] && [ "$R1_PORT" != "$UAS_PORT" ] ||
	it_die "free port picks collided, run again"

sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" 300
UAS_PID=$IT_LAST_PID

# R1: failure_limit high enough that the wrong-password calls below do not block 127.0.0.1
referee_config "$W/r1.yaml" "$R1_PORT" "$UAS_PORT" "$(
	cat <<EOF
auth:
  algorithms: [MD5]
  failure_limit: {count: 1000, window: 60}
metrics:
  listen: 127.0.0.1:$M_PORT
$RULES
EOF
)"
referee_config "$W/r2.yaml" "$R2_PORT" "$UAS_PORT" "$(
	cat <<EOF
auth:
  nonce_ttl: 10
  failure_limit: {count: 5, window: 10}
$RULES
EOF
)"
authit_referee_start r1 "$W/r1.yaml" "$R1_PORT"
R1_PID=$AUTHIT_PID
authit_referee_start r2 "$W/r2.yaml" "$R2_PORT"
R2_PID=$AUTHIT_PID
authit_wait_tcp_port "$M_PORT" 10 || it_die "R1 /metrics not listening on $M_PORT"

uas_invites() { sipp_count uas 0_INVITE_Recv; }

# ---- (a) authenticated calls through R1 to the UAS ---------------------------------------
ok_users=()
for u in $(seq 1000 1009); do [ -n "$(authit_bench_perms "$u")" ] && ok_users+=("$u:pw$u"); done
authit_sipp_csv "$W/calls.csv" bench "${ok_users[@]}"
sipp_uac_run calls "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$R1_PORT" "$IT_SIPP_DIR/auth_uac_call.xml" \
	-inf "$W/calls.csv"
sipp_uac_expect "(a) authenticated MD5 calls (users with ha1_md5 and with passwords)" "$CALLS"

# ---- (b) authenticated, but the permission is missing: 403 Requires ... -----------------
# 1009 holds nothing (needs LocalDialing for 255xxxx); 1001 holds LocalDialing only (011...)
authit_sipp_csv "$W/noperm1.csv" 2551234 1009:pw1009
sipp_uac_run forbidden_local 2 10 30 "$R1_PORT" "$IT_SIPP_DIR/auth_uac_forbidden.xml" -inf "$W/noperm1.csv"
sipp_uac_expect "(b) user without LocalDialing -> 403 Requires" 2
authit_sipp_csv "$W/noperm2.csv" 0114420710001 1001:pw1001
sipp_uac_run forbidden_intl 2 10 30 "$R1_PORT" "$IT_SIPP_DIR/auth_uac_forbidden.xml" -inf "$W/noperm2.csv"
sipp_uac_expect "(b) user without InternationalDialing -> 403 Requires" 2
out=$(sipauth call --to "$R1_PORT" --user 1009 --pw pw1009 --target 2551234)
authit_expect "(b) exact reason phrase" "Requires LocalDialing" "$(authit_line "$out" answer.reason)"

# ---- (d) anonymous caller from outside our domains to a number that needs nothing --------
sipp_uac_run anon_free 5 10 40 "$R1_PORT" "$IT_SIPP_DIR/uac_call.xml" -s 1500
sipp_uac_expect "(d) anonymous call to 1xxx (nothing required) passes" 5
sipp_uac_run anon_local 1 1 20 "$R1_PORT" "$IT_SIPP_DIR/uac_invite_407.xml" -s 2551234
sipp_uac_expect "(d) anonymous call to 255xxxx is challenged" 1

# every INVITE so far reached the UAS: CALLS authenticated + 5 anonymous (written each second)
want_inv=$((CALLS + 5))
for _ in $(seq 40); do
	[ "$(uas_invites)" = "$want_inv" ] && break
	sleep 0.25
done
authit_expect "UAS received the allowed INVITEs only" "$want_inv" "$(uas_invites)"

# ---- (c) wrong password: challenged again, never forwarded -------------------------------
fwd0=$(authit_metric "$M_PORT" referee_forwarded_total)
fail0=$(authit_metric "$M_PORT" referee_auth_failures_total)
authit_sipp_csv "$W/wrongpw.csv" 2551234 1001:nope 1002:pw1003 1999:pw1999
sipp_uac_run wrongpw 3 10 30 "$R1_PORT" "$IT_SIPP_DIR/auth_uac_wrongpw.xml" -inf "$W/wrongpw.csv"
sipp_uac_expect "(c) wrong password / unknown user -> 407 again" 3
sleep 1.5 # the UAS writes its counters every second
authit_expect "(c) UAS received no INVITE" "$want_inv" "$(uas_invites)"
fwd1=$(authit_metric "$M_PORT" referee_forwarded_total)
fail1=$(authit_metric "$M_PORT" referee_auth_failures_total)
authit_expect "(c) referee_forwarded_total unchanged" "$fwd0" "$fwd1"
[ "$fwd0" != NA ] && [ "$fwd0" -gt 0 ] 2>/dev/null && it_check "(c) /metrics readable (forwarded $fwd0)" ||
	it_fail "(c) /metrics readable" "referee_forwarded_total=$fwd0"
authit_expect "(c) referee_auth_failures_total grew by 3" 3 $((fail1 - fail0))

# ---- (f) 407 content ----------------------------------------------------------------------
out=$(sipauth anon --to "$R1_PORT" --target 2551234)
authit_expect "(f) R1 [MD5]: one Proxy-Authenticate, MD5" "algorithm=MD5" \
	"$(printf '%s\n' "$out" | grep '^anon.hdr Proxy-Authenticate:' | grep -o 'algorithm=[A-Z0-9-]*' | tr '\n' ' ' | sed 's/ $//')"
out=$(sipauth anon --to "$R2_PORT" --target 2551234)
authit_expect "(f) anonymous INVITE to 255xxxx -> 407" 407 "$(authit_line "$out" anon)"
authit_expect "(f) default algorithms: SHA-256 then MD5" "algorithm=SHA-256 algorithm=MD5" \
	"$(printf '%s\n' "$out" | grep '^anon.hdr Proxy-Authenticate:' | grep -o 'algorithm=[A-Z0-9-]*' | tr '\n' ' ' | sed 's/ $//')"
n_good=$(printf '%s\n' "$out" | grep '^anon.hdr Proxy-Authenticate: Digest ' | grep 'realm="example.com"' |
	grep -E 'nonce="[^"]{16,}"' | grep -E 'opaque="[^"]+"' | grep 'qop="auth"' | grep -vc 'stale')
authit_expect "(f) realm, nonce, opaque, qop=\"auth\", no stale on a fresh challenge" 2 "$n_good"
for algo in SHA-256 MD5; do
	out=$(sipauth call --to "$R2_PORT" --user 1003 --pw pw1003 --target 2551234 --algo "$algo")
	authit_expect "(f) $algo answer from a password user forwarded" forwarded "$(authit_line "$out" answer)"
done
out=$(sipauth call --to "$R2_PORT" --user 1002 --pw pw1002 --target 2551234 --algo MD5)
authit_expect "(f) MD5 answer from an ha1_md5 user forwarded" forwarded "$(authit_line "$out" answer)"
out=$(sipauth call --src 127.0.0.3 --to "$R2_PORT" --user 1003 --pw pw1003 --target 2551234 --forge)
authit_expect "(f) forged nonce -> 407" 407 "$(authit_line "$out" answer)"
authit_expect "(f) forged nonce -> not stale" 0 "$(printf '%s\n' "$out" | grep -c '^answer.hdr .*stale=true')"
# stale: challenge now, answer after nonce_ttl (10 s, the smallest allowed) has passed
it_log "waiting 12 s for a nonce to expire (auth.nonce_ttl 10)"
sipauth call --src 127.0.0.3 --to "$R2_PORT" --user 1003 --pw pw1003 --target 2551234 --delay 12 >"$W/stale.out" &
STALE_JOB=$!
sipauth call --src 127.0.0.4 --to "$R2_PORT" --user 1003 --pw nope --target 2551234 --delay 12 >"$W/stale_bad.out" &
STALE_BAD_JOB=$!

# ---- (e) the same nonce-count on another request is a replay -----------------------------
out=$(sipauth call --to "$R2_PORT" --user 1005 --pw pw1005 --target 2551234 --replay-to "$R2_PORT" --next-to "$R2_PORT")
authit_expect "(e) first use of nc=1 forwarded" forwarded "$(authit_line "$out" answer)"
authit_expect "(e) same credential, new Call-ID/branch -> 407" 407 "$(authit_line "$out" replay)"
authit_expect "(e) same nonce, nc=2 forwarded" forwarded "$(authit_line "$out" next)"

# ---- (g) failure limiter: count 5, window 10 s, from its own source address ---------------
out=$(sipauth limit --src 127.0.0.2 --to "$R2_PORT" --user 1003 --pw nope --good-pw pw1003 \
	--target 2551234 --count 5 --window 10)
printf '%s\n' "$out" | grep -vE '\.(hdr|reason) ' >"$W/limit.out"
bad=$(awk '$1 ~ /^bad[0-9]+$/ { print $2 }' "$W/limit.out" | tr '\n' ' ')
authit_expect "(g) 5 wrong answers each challenged again" "407 407 407 407 407 " "$bad"
authit_expect "(g) then an anonymous request from that source -> 403" 403 "$(authit_line "$out" blocked_anon)"
authit_expect "(g) then even the right password -> 403" 403 "$(authit_line "$out" blocked_good)"
late=$(authit_line "$out" late_anon)
[ -z "$late" ] || authit_expect "(g) still 403 just before the window ends" 403 "$late"
authit_expect "(g) after the window: the right password gets through" forwarded "$(authit_line "$out" after)"
out=$(sipauth call --src 127.0.0.5 --to "$R2_PORT" --user 1003 --pw pw1003 --target 2551234)
authit_expect "(g) another source is not limited" forwarded "$(authit_line "$out" answer)"

wait "$STALE_JOB" "$STALE_BAD_JOB"
out=$(cat "$W/stale.out")
authit_expect "(f) expired genuine nonce, right password -> 407" 407 "$(authit_line "$out" answer)"
authit_expect "(f) ... with stale=true on both challenges" 2 "$(printf '%s\n' "$out" | grep -c '^answer.hdr Proxy-Authenticate: .*stale=true')"
out=$(cat "$W/stale_bad.out")
authit_expect "(f) expired nonce, wrong password -> 407" 407 "$(authit_line "$out" answer)"
authit_expect "(f) ... without stale" 0 "$(printf '%s\n' "$out" | grep -c 'stale=true')"

authit_referee_stop r1 "$R1_PID"
authit_referee_stop r2 "$R2_PID"
it_kill "$UAS_PID"
[ -s "$W/sipauth.err" ] && it_fail "sipauth.py errors" "$(tail -n 5 "$W/sipauth.err")"
it_finish

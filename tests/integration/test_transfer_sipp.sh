#!/usr/bin/env bash
# test_transfer_sipp.sh - transfer authorization end to end (SPEC §5, §2 item 2): a private
# redis-server, pairs of referee instances sharing it and the secret, a SIPp transferor with MD5
# digest, and python3 UDP peers (lib_transfer.sh's tua.py) as transferee and target for the
# exact checks. Grant pair G1/G2: REFER 407 -> digest -> rewritten Refer-To (refgrant + escaped
# X-Sipx-Authidentity) -> 202; the transferee's INVITE through the other instance reaches the
# target without the grant; replay from another dialog 403 on either instance, retransmission
# passes (JTI bound in Redis); a forged/moved grant or none 407; a token the transferor wrote in
# the Refer-To replaced; check_at_refer 403; foreign Refer-To untouched; anonymous local REFER
# 407. Pair E1/E2 (grant_ttl 1): an expired grant is ignored (407). Pair S1/S2 (identity sipx):
# the sipXecs signature, copied once unescaped, authorizes the INVITE. Then the bench scenario
# bench/sipp/refer_transfer.xml runs a few calls. Every process is bounded and killed by PID.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_transfer.sh"
it_need sipp redis-server redis-cli python3 timeout
ADMIN=$REFEREE_BUILD_DIR/referee-admin
[ -x "$ADMIN" ] || it_die "no $ADMIN (build the referee-admin target)"
W=$IT_WORK
TARGET=2550001
TARGET_URI=sip:$TARGET@example.com

# check NAME COMMAND...: it_check when the command succeeds, it_fail otherwise.
check() {
	local name=$1
	shift
	if "$@"; then it_check "$name"; else it_fail "$name"; fi
}
# expect_eq NAME GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then it_check "$1"; else it_fail "$1" "got '${2//$'\n'/ | }', want '$3'"; fi
}
# expect_403 NAME GOT: a 403 whatever its reason phrase (SPEC §5 names only the code).
expect_403() {
	if [[ $2 == "final 403 "* ]]; then it_check "$1 (${2#final })"; else it_fail "$1" "got '${2//$'\n'/ | }'"; fi
}
# find_req LISTENER METHOD CALLID: the recorded requests of METHOD with that Call-ID.
find_req() { grep -l -i "^Call-ID: $3"$'\r'"\$" "$W/$1"/*-"$2".sip 2>/dev/null; }
unescape() { python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))' "$1"; }

# ---- setup: Redis, users, listeners, instances
xfer_write_tua
xfer_redis_start
TEE=$(it_free_udp_port)
TGT=$(it_free_udp_port)
for n in G1 G2 E1 E2 S1 S2; do printf -v "P_$n" '%s' "$(it_free_udp_port)"; done
xfer_config "$W/g1.yaml" "$P_G1" "$TGT" grant 60
xfer_config "$W/g2.yaml" "$P_G2" "$TGT" grant 60
xfer_config "$W/e1.yaml" "$P_E1" "$TGT" grant 1
xfer_config "$W/e2.yaml" "$P_E2" "$TGT" grant 1
xfer_config "$W/s1.yaml" "$P_S1" "$TGT" sipx 60
xfer_config "$W/s2.yaml" "$P_S2" "$TGT" sipx 60
"$ADMIN" -c "$W/g1.yaml" user add 1001@example.com --password pw1001 --permission LocalDialing >"$W/admin.out" 2>&1 &&
	"$ADMIN" -c "$W/g1.yaml" user add 1002@example.com --password pw1002 >>"$W/admin.out" 2>&1 ||
	{ cat "$W/admin.out"; it_die "referee-admin user add failed"; }
xfer_serve tee "$TEE" 300
xfer_serve tgt "$TGT" 300
xfer_referee_start G1 "$W/g1.yaml" "$P_G1"
xfer_referee_start G2 "$W/g2.yaml" "$P_G2"
TEE_URI=sip:transferee@127.0.0.1:$TEE

# refer NAME PORT [REFER-TO]: the transferor 1001 REFERs the transferee to REFER-TO (default
# <$TARGET_URI>) through PORT; sets
# RT (the Refer-To the transferee received), URI (its URI without headers), TOKEN, HDR (the
# X-Sipx-Authidentity header parameter, unescaped once, as a UA copying it would send it).
refer() {
	local before
	before=$(xfer_count tee REFER)
	RT="" URI="" TOKEN="" HDR="" REFER_FILE=""
	xfer_sipp_refer "$1" "$2" transfer_refer_auth.xml 1001 pw1001 "$TEE_URI" "${3:-<$TARGET_URI>}"
	sipp_uac_expect "$1: REFER -> 407 -> REFER with MD5 credentials -> 202" 1
	if [ "$(xfer_count tee REFER)" -le "$before" ]; then
		it_fail "$1: transferee received the REFER"
		return 1
	fi
	local f
	f=$(xfer_last_req tee REFER)
	RT=$(xfer_hdr "$f" Refer-To)
	URI=${RT#<}
	URI=${URI%%\?*}
	URI=${URI%>}
	TOKEN=$(printf '%s' "$URI" | sed -n 's/.*;refgrant=\([^;?>]*\).*/\1/p')
	local h
	h=$(printf '%s' "$RT" | sed -n 's/.*[?&]X-Sipx-Authidentity=\([^&>]*\).*/\1/ip')
	HDR=$([ -n "$h" ] && unescape "$h")
	REFER_FILE=$f
}

# ---- (a) authenticated REFER: challenged, rewritten, relayed, 202
refer a_refer "$P_G1"
printf '%s\n' "$RT" >"$W/a_referto.txt"
if [[ $RT =~ ^\<sip:$TARGET@example\.com\;refgrant=v1\.[A-Za-z0-9_.-]+\?X-Sipx-Authidentity=%3Csip%3A1001%40example\.com%3Bgrant%3D[A-Za-z0-9_.-]+%3E\>$ ]]; then
	it_check "a: Refer-To rewritten with refgrant and the escaped X-Sipx-Authidentity header"
else
	it_fail "a: Refer-To rewritten" "$RT"
fi
expect_eq "a: header grant = URI grant" "$HDR" "<sip:1001@example.com;grant=$TOKEN>"
expect_eq "a: token v1.ID.EXP.JTI.MAC" "$(printf '%s' "$TOKEN" | awk -F. '{ print NF, $1 }')" "5 v1"
check "a: rewritten Refer-To under 255 characters" [ "${#RT}" -lt 255 ]
[ -n "$REFER_FILE" ] && [ -z "$(xfer_hdr "$REFER_FILE" Proxy-Authorization)" ] &&
	it_check "a: Proxy-Authorization removed toward the untrusted transferee" ||
	it_fail "a: Proxy-Authorization removed" "$(xfer_hdr "$REFER_FILE" Proxy-Authorization)"
[ -n "$REFER_FILE" ] && [ "$(xfer_ruri "$REFER_FILE")" = "$TEE_URI" ] &&
	it_check "a: REFER relayed to the IP-literal Request-URI" || it_fail "a: REFER Request-URI"
GRANT1_URI=$URI
GRANT1_TOKEN=$TOKEN

# ---- (b) the transferee's INVITE (URI carrier) through the other instance
out=$(xfer_tua call --proxy "$P_G2" --ruri "$GRANT1_URI" --callid "b1-$$@it" --fromtag b1 \
	--branch z9hG4bKb1x --save "$W/b1-invite.sip" --out "$W/b1")
expect_eq "b: INVITE with refgrant via G2 -> 200, BYE 200" "${out//$'\n'/ }" "final 200 OK bye 200 OK"
f=$(find_req tgt INVITE "b1-$$@it" | head -n 1)
if [ -n "$f" ]; then
	expect_eq "b: target Request-URI without refgrant" "$(xfer_ruri "$f")" "$TARGET_URI"
	check "b: target saw no X-Sipx-Authidentity" [ -z "$(xfer_hdr "$f" X-Sipx-Authidentity)" ]
	expect_eq "b: To header left alone" "$(xfer_hdr "$f" To)" "<$GRANT1_URI>"
	check "b: Record-Route signed by referee" grep -q '^Record-Route: <sip:127.0.0.1:[0-9]*;lr;ra=' "$f"
else
	it_fail "b: target received the INVITE"
fi
[ -n "$(find_req tgt ACK "b1-$$@it")" ] && [ -n "$(find_req tgt BYE "b1-$$@it")" ] &&
	it_check "b: ACK and BYE reached the target" || it_fail "b: ACK and BYE reached the target"

# ---- (d) replay from another dialog: 403 on both instances; retransmission passes
out=$(xfer_tua call --proxy "$P_G1" --ruri "$GRANT1_URI" --callid "d1-$$@it" --fromtag d1 --branch z9hG4bKd1x)
expect_403 "d: grant replayed in a new dialog via G1 -> 403" "$out"
out=$(xfer_tua call --proxy "$P_G2" --ruri "$GRANT1_URI" --callid "d2-$$@it" --fromtag d2 --branch z9hG4bKd2x)
expect_403 "d: grant replayed in a new dialog via G2 -> 403" "$out"
out=$(xfer_tua call --proxy "$P_G2" --ruri "$GRANT1_URI" --callid "b1-$$@it" --fromtag d3 --branch z9hG4bKd3x)
expect_403 "d: same Call-ID, other From tag -> 403" "$out"
jti_keys=$(redis-cli -p "$XFER_RPORT" --scan --pattern 'referee:jti:*' | head -n 5)
jti_ttl=$(redis-cli -p "$XFER_RPORT" ttl "$(echo "$jti_keys" | head -n 1)")
[ -n "$jti_keys" ] && [ "$jti_ttl" -gt 0 ] 2>/dev/null && [ "$jti_ttl" -le 130 ] &&
	it_check "d: the JTI is bound in Redis (referee:jti:*, TTL ${jti_ttl}s)" ||
	it_fail "d: JTI key in Redis" "keys '$jti_keys' ttl '$jti_ttl'"
check "d: no replayed INVITE reached the target" [ -z "$(find_req tgt INVITE "d[12]-$$@it")" ]
out=$(xfer_tua call --proxy "$P_G2" --replay "$W/b1-invite.sip" --no-bye)
expect_eq "d: retransmission of the first INVITE via G2 passes" "$out" "final 200 OK"
out=$(xfer_tua call --proxy "$P_G1" --replay "$W/b1-invite.sip" --no-bye)
expect_eq "d: retransmission of the first INVITE via G1 passes" "$out" "final 200 OK"
expect_eq "d: target got the INVITE three times" "$(find_req tgt INVITE "b1-$$@it" | wc -l)" 3

# ---- negative controls: no grant, a forged grant, a grant for another target
out=$(xfer_tua call --proxy "$P_G2" --ruri "$TARGET_URI" --callid "n1-$$@it" --fromtag n1 --branch z9hG4bKn1x)
expect_eq "n: INVITE without a grant -> 407" "$out" "final 407 Proxy Authentication Required"
refer n_refer "$P_G1"
last=${TOKEN: -1}
[ "$last" = A ] && swap=B || swap=A
forged=${URI%?}$swap
out=$(xfer_tua call --proxy "$P_G2" --ruri "$forged" --callid "n2-$$@it" --fromtag n2 --branch z9hG4bKn2x)
expect_eq "n: grant with a changed MAC -> 407" "$out" "final 407 Proxy Authentication Required"
other=${URI/$TARGET@/2550002@}
out=$(xfer_tua call --proxy "$P_G2" --ruri "$other" --callid "n3-$$@it" --fromtag n3 --branch z9hG4bKn3x)
expect_eq "n: grant moved to another target -> 407" "$out" "final 407 Proxy Authentication Required"
check "n: none of them reached the target" [ -z "$(find_req tgt INVITE "n[123]-$$@it")" ]
# the same (unconsumed) grant, header carrier only (a UA copying headers, dropping URI params)
out=$(xfer_tua call --proxy "$P_G1" --ruri "$TARGET_URI" --callid "b2-$$@it" --fromtag b2 \
	--branch z9hG4bKb2x --hdr "X-Sipx-Authidentity: $HDR")
expect_eq "b: header-only grant (after the failed attempts) -> 200" "${out//$'\n'/ }" "final 200 OK bye 200 OK"
f=$(find_req tgt INVITE "b2-$$@it" | head -n 1)
[ -n "$f" ] && [ -z "$(xfer_hdr "$f" X-Sipx-Authidentity)" ] && [ "$(xfer_ruri "$f")" = "$TARGET_URI" ] &&
	it_check "b: header-only variant: header removed before the target" || it_fail "b: header-only variant at target"

# ---- (b) header-copying variant: Request-URI parameter and header both present; the
# transferor's own refgrant and X-Sipx-Authidentity (forged) are replaced, not kept
refer b3_refer "$P_G1" "<$TARGET_URI;refgrant=v1.Zm9yZ2Vk.1.2.3?X-Sipx-Authidentity=%3Csip%3Aboss%40example.com%3E>"
n_grants=$(printf '%s' "$RT" | grep -o 'refgrant=' | wc -l)
n_hdrs=$(printf '%s' "$RT" | grep -o -i 'X-Sipx-Authidentity=' | wc -l)
if [ "$n_grants" = 1 ] && [ "$n_hdrs" = 1 ] && [[ $RT != *Zm9yZ2Vk* && $RT != *boss* ]] &&
	[ "$HDR" = "<sip:1001@example.com;grant=$TOKEN>" ]; then
	it_check "a: a token the transferor put in the Refer-To is replaced by referee's"
else
	it_fail "a: sender's token replaced" "$RT"
fi
out=$(xfer_tua call --proxy "$P_G2" --ruri "$URI" --callid "b3-$$@it" --fromtag b3 \
	--branch z9hG4bKb3x --hdr "X-Sipx-Authidentity: $HDR")
expect_eq "b: INVITE with refgrant and X-Sipx-Authidentity -> 200" "${out//$'\n'/ }" "final 200 OK bye 200 OK"
f=$(find_req tgt INVITE "b3-$$@it" | head -n 1)
[ -n "$f" ] && [ -z "$(xfer_hdr "$f" X-Sipx-Authidentity)" ] && [ "$(xfer_ruri "$f")" = "$TARGET_URI" ] &&
	it_check "b: both carriers removed before the target" ||
	it_fail "b: both carriers removed" "$([ -n "$f" ] && head -n 1 "$f")"

# ---- (c) check_at_refer: 1002 may not call the target
before=$(xfer_count tee REFER)
xfer_sipp_refer c_refer "$P_G1" transfer_refer_denied.xml 1002 pw1002 "$TEE_URI" "<$TARGET_URI>"
sipp_uac_expect "c: REFER by a user without LocalDialing -> 403 Requires LocalDialing" 1
expect_eq "c: the refused REFER was not relayed" "$(xfer_count tee REFER)" "$before"

# ---- (f) foreign Refer-To: anonymous in-dialog REFER relayed untouched, never challenged
FOREIGN='"Bob" <sip:bob@other.example.net;transport=udp?Replaces=abc%40x%3Bto-tag%3D1%3Bfrom-tag%3D2&Subject=hi>;x=1'
mkreq() { # mkreq FILE METHOD RURI FROM TO CALLID REFER-TO
	printf '%s\r\n' "$2 $3 SIP/2.0" "Via: SIP/2.0/UDP 127.0.0.1:$XPORT;branch=z9hG4bK$6;rport" \
		"Max-Forwards: 70" "From: $4" "To: $5" "Call-ID: $6" "CSeq: 7 $2" \
		"Contact: <sip:a@127.0.0.1:$XPORT>" "Refer-To: $7" "Content-Length: 0" "" >"$1"
}
XPORT=$(it_free_udp_port)
before=$(xfer_count tee REFER)
mkreq "$W/f.sip" REFER "$TEE_URI" "<sip:1001@example.com>;tag=fa" "<$TEE_URI>;tag=fb" "f1-$$" "$FOREIGN"
out=$(xfer_tua req --proxy "$P_G1" --lport "$XPORT" --file "$W/f.sip" --out "$W/f.resp")
expect_eq "f: anonymous REFER with a foreign Refer-To -> 202 (no challenge)" "$out" "final 202 Accepted"
f=$(find_req tee REFER "f1-$$")
[ -n "$f" ] && [ "$(xfer_hdr "$f" Refer-To)" = "$FOREIGN" ] &&
	it_check "f: foreign Refer-To relayed byte for byte" ||
	it_fail "f: foreign Refer-To untouched" "$([ -n "$f" ] && xfer_hdr "$f" Refer-To)"

# ---- (g) anonymous REFER with a local Refer-To: 407, not relayed
mkreq "$W/g1.sip" REFER "$TEE_URI" "<sip:1001@example.com>;tag=ga" "<$TEE_URI>;tag=gb" "g1-$$" "<$TARGET_URI>"
out=$(xfer_tua req --proxy "$P_G1" --lport "$XPORT" --file "$W/g1.sip" --out "$W/g1.resp")
expect_eq "g: anonymous in-dialog REFER with a local Refer-To -> 407" "$out" "final 407 Proxy Authentication Required"
check "g: the 407 offers MD5 digest" grep -q '^Proxy-Authenticate: Digest realm="example.com".*algorithm=MD5' "$W/g1.resp"
mkreq "$W/g2.sip" REFER "sip:transferee@example.com" "<sip:x@it.invalid>;tag=gc" "<sip:transferee@example.com>" "g2-$$" "<$TARGET_URI>"
out=$(xfer_tua req --proxy "$P_G2" --lport "$XPORT" --file "$W/g2.sip")
expect_eq "g: anonymous out-of-dialog REFER (our domain, foreign From) -> 407" "$out" "final 407 Proxy Authentication Required"
check "g: neither reached a peer" [ -z "$(find_req tee REFER "g[12]-$$")$(find_req tgt REFER "g[12]-$$")" ]

# ---- (e) expired grant: issued by E1 (grant_ttl 1), presented to E2 after EXP
xfer_referee_start E1 "$W/e1.yaml" "$P_E1"
xfer_referee_start E2 "$W/e2.yaml" "$P_E2"
t_refer=$(date +%s)
refer e_refer "$P_E1"
exp=$(printf '%s' "$TOKEN" | awk -F. '{ print $3 }')
exp_s=$((16#${exp:-0}))
[ "$exp_s" -ge "$t_refer" ] && [ "$exp_s" -le $((t_refer + 3)) ] &&
	it_check "e: EXP = issue time + 1 s" || it_fail "e: EXP = issue time + 1 s" "exp $exp_s, REFER at $t_refer"
for _ in $(seq 60); do [ "$(date +%s)" -gt $((exp_s + 1)) ] && break; sleep 0.1; done
out=$(xfer_tua call --proxy "$P_E2" --ruri "$URI" --callid "e1-$$@it" --fromtag e1 --branch z9hG4bKe1x)
expect_eq "e: expired grant -> 407" "$out" "final 407 Proxy Authentication Required"
xfer_referee_stop E1
xfer_referee_stop E2

# ---- (h) sipx mode: signature in the Refer-To, copied once unescaped into the INVITE
xfer_referee_start S1 "$W/s1.yaml" "$P_S1"
xfer_referee_start S2 "$W/s2.yaml" "$P_S2"
refer h_refer "$P_S1"
printf '%s\n' "$RT" >"$W/h_referto.txt"
if [[ $RT =~ ^\<sip:$TARGET@example\.com\?X-sipX-Authidentity=%3Csip%3A1001%40example\.com%3Bsignature%3D[0-9A-F]+%253A%253A[0-9a-f]{32}%3E\>$ ]]; then
	it_check "h: sipXecs X-Sipx-Authidentity header parameter, signature ...%253A%253A..."
else
	it_fail "h: sipx Refer-To" "$RT"
fi
check "h: no refgrant in sipx mode" [ -z "$TOKEN" ]
[[ $HDR =~ ^\<sip:1001@example\.com\;signature=[0-9A-F]+%3A%3A[0-9a-f]{32}\>$ ]] &&
	it_check "h: unescaped once: <sip:1001@example.com;signature=TS%3A%3AHASH>" || it_fail "h: unescaped once" "$HDR"
out=$(xfer_tua call --proxy "$P_S2" --ruri "$URI" --callid "h1-$$@it" --fromtag h1 --branch z9hG4bKh1x \
	--hdr "X-Sipx-Authidentity: $HDR")
expect_eq "h: INVITE with the copied X-Sipx-Authidentity via S2 -> 200" "${out//$'\n'/ }" "final 200 OK bye 200 OK"
f=$(find_req tgt INVITE "h1-$$@it" | head -n 1)
[ -n "$f" ] && [ -z "$(xfer_hdr "$f" X-Sipx-Authidentity)" ] &&
	it_check "h: X-Sipx-Authidentity removed toward the untrusted target" || it_fail "h: header removed at target"
out=$(xfer_tua call --proxy "$P_S2" --ruri "$URI" --callid "h2-$$@it" --fromtag h2 --branch z9hG4bKh2x)
expect_eq "h: same INVITE without the header -> 407" "$out" "final 407 Proxy Authentication Required"
bad=$(printf '%s' "$HDR" | sed 's/\(%3A%3A.\)./\1z/')
out=$(xfer_tua call --proxy "$P_S2" --ruri "$URI" --callid "h3-$$@it" --fromtag h3 --branch z9hG4bKh3x \
	--hdr "X-Sipx-Authidentity: $bad")
expect_eq "h: forged signature -> 407" "$out" "final 407 Proxy Authentication Required"
xfer_referee_stop S1
xfer_referee_stop S2

# ---- the bench scenario (bench/sipp/refer_transfer.xml) against G1, target a SIPp UAS
BENCH_XML=$REFEREE_SOURCE_DIR/bench/sipp/refer_transfer.xml
if [ -f "$BENCH_XML" ]; then
	SINK=$(it_free_udp_port)
	xfer_config "$W/g3.yaml" "$(it_free_udp_port)" "$SINK" grant 60
	P_G3=$(sed -n 's|^listen: \[udp://127.0.0.1:\([0-9]*\)\]|\1|p' "$W/g3.yaml")
	xfer_referee_start G3 "$W/g3.yaml" "$P_G3"
	sipp_uas_start sink "$SINK" "$IT_SIPP_DIR/uas.xml" 60
	printf 'SEQUENTIAL\n1001;[authentication username=1001 password=pw1001];%s\n' "$TARGET" >"$W/bench_users.csv"
	sipp_uac_run bench "5" 5 40 "$P_G3" "$BENCH_XML" -inf "$W/bench_users.csv"
	sipp_uac_expect "bench: refer_transfer.xml REFER/407/REFER/202 + INVITE/200/ACK/BYE" 5
	for _ in $(seq 30); do # the sink's files are written every second, after its calls' linger
		[ "$(sipp_stat_last "$W/sink/stat.csv" 'SuccessfulCall(C)')" = 5 ] && break
		sleep 0.5
	done
	expect_eq "bench: the sink completed 5 calls" "$(sipp_stat_last "$W/sink/stat.csv" 'SuccessfulCall(C)')" 5
	expect_eq "bench: the sink answered 5 INVITEs" "$(sipp_count sink 0_INVITE_Recv)" 5
	xfer_referee_stop G3
else
	it_fail "bench scenario present" "$BENCH_XML"
fi

# ---- shutdown: both grant instances exit 0 with no sanitizer report
xfer_referee_stop G1
xfer_referee_stop G2
it_finish

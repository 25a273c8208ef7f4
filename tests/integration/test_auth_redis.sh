#!/usr/bin/env bash
# test_auth_redis.sh - digest authentication and permission rules on the Redis store, seen
# from SIP (SPEC §3, §6, §7): a private redis-server, users written with referee-admin
# (user add/show/list, permission grant/revoke seen by a running referee within 1 s through
# referee:invalidate), two referee instances A and B on different ports sharing the Redis
# and the secret (a nonce from A answered to B is accepted; the same nc replayed to A after
# B accepted it is refused), a retransmission while a stalled Redis checks the nonce count
# (dropped, not challenged; the original forwarded), Redis stopped mid-test (cached user still authenticates,
# uncached gets 503 with Retry-After) and restarted (the uncached user recovers by itself).
# SIP traffic: sipauth.py (lib_auth.sh), whose INVITEs carry a Route to its own sink.
# Bounded: servers killed by PID by the EXIT trap, every poll has a deadline.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"

it_need redis-server redis-cli python3 ss timeout md5sum
ADMIN=${REFEREE_ADMIN_BIN:-$REFEREE_BUILD_DIR/referee-admin}
[ -x "$ADMIN" ] || it_die "no $ADMIN (build the referee-admin target)"
W=$IT_WORK

authit_redis_start redis1
referee_secret "$W/secret"
A_PORT=$(it_free_udp_port)
B_PORT=$(it_free_udp_port)
[ "$A_PORT" != "$B_PORT" ] || it_die "free port picks collided, run again"
A_MPORT=$(authit_free_tcp_port)
B_MPORT=$(authit_free_tcp_port)
[ "$A_MPORT" != "$B_MPORT" ] || it_die "free port picks collided, run again"
# conf NAME PORT METRICS_PORT: instance config; routes.local is never used (sipauth.py routes to itself)
conf() {
	cat >"$W/$1.yaml" <<EOF
listen: [udp://127.0.0.1:$2]
metrics: {listen: "127.0.0.1:$3"}
domains: [example.com]
secret_file: $W/secret
threads: {receivers: 1, workers: 2}
routes:
  local: udp://127.0.0.1:9
health: {interval: 0} # the sink does not answer OPTIONS probes (test_health_sipp.sh probes)
store:
  backend: redis
  redis: redis://127.0.0.1:$AUTHIT_RPORT
  cache_max_age: 300
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
  - {hosts: [example.com], users: ["011."], permissions: [InternationalDialing]}
  - {hosts: [example.com], users: ["1xxx"], permissions: []}
EOF
}
conf a "$A_PORT" "$A_MPORT"
conf b "$B_PORT" "$B_MPORT"
admin() { "$ADMIN" -c "$W/a.yaml" "$@"; }

# ---- referee-admin ------------------------------------------------------------------------
admin user add 1000@example.com --password pw1000 --permission LocalDialing --permission InternationalDialing \
	>"$W/admin.out" 2>&1 && it_check "admin user add (two permissions)" || it_fail "admin user add" "$(cat "$W/admin.out")"
for u in 1001 1003 1005; do
	admin user add "$u@example.com" --password "pw$u" --permission LocalDialing >>"$W/admin.out" 2>&1 ||
		it_fail "admin user add $u" "$(tail -n 1 "$W/admin.out")"
done
admin user add 1009@example.com --password pw1009 >>"$W/admin.out" 2>&1 || it_fail "admin user add 1009"
authit_expect "ha1_md5 in Redis = MD5(user:realm:pw)" "$(authit_ha1_md5 1001 pw1001)" \
	"$(redis-cli -p "$AUTHIT_RPORT" HGET referee:user:1001@example.com ha1_md5)"
admin user show 1000@example.com >"$W/show.out" 2>&1
grep -q '1000@example.com' "$W/show.out" && grep -q 'LocalDialing' "$W/show.out" &&
	grep -q 'InternationalDialing' "$W/show.out" && ! grep -qiE 'ha1|[0-9a-f]{32}' "$W/show.out" &&
	it_check "admin user show: identity and permissions, no HA1" || it_fail "admin user show" "$(cat "$W/show.out")"
admin user show 1000@example.com --secrets >"$W/show2.out" 2>&1
grep -q "$(authit_ha1_md5 1000 pw1000)" "$W/show2.out" && it_check "admin user show --secrets prints the HA1" ||
	it_fail "admin user show --secrets" "$(cat "$W/show2.out")"
admin user show 4242@example.com >/dev/null 2>&1
authit_expect "admin user show of an unknown user: exit 1" 1 $?
admin user list >"$W/list.out" 2>&1
authit_expect "admin user list" "1000@example.com 1001@example.com 1003@example.com 1005@example.com 1009@example.com" \
	"$(sort "$W/list.out" | tr '\n' ' ' | sed 's/ $//')"

authit_referee_start a "$W/a.yaml" "$A_PORT"
A_PID=$AUTHIT_PID
authit_referee_start b "$W/b.yaml" "$B_PORT"
B_PID=$AUTHIT_PID

# call PORT USER PW TARGET [ARGS]: sipauth call; prints its whole output
call() {
	local port=$1 u=$2 p=$3 t=$4
	shift 4
	sipauth call --to "$port" --user "$u" --pw "$p" --target "$t" "$@"
}
# the first lookup of each user is fetched asynchronously: wait until it is answered
out=$(sipauth poll --to "$A_PORT" --user 1001 --pw pw1001 --target 2551234 --within 10)
authit_expect "A: Redis user authenticates and is forwarded" forwarded "$(authit_line "$out" poll | cut -d' ' -f1)"
out=$(call "$A_PORT" 1001 nope 2551234)
authit_expect "A: wrong password -> 407" 407 "$(authit_line "$out" answer)"
out=$(call "$A_PORT" 1000 pw1000 0114420710000 --algo SHA-256)
authit_expect "A: SHA-256 answer (ha1_sha256 written by admin) forwarded" forwarded "$(authit_line "$out" answer)"

# ---- permission grant / revoke seen by the running referee within 1 s ---------------------
out=$(call "$A_PORT" 1009 pw1009 2551234)
authit_expect "A: user without LocalDialing -> 403" 403 "$(authit_line "$out" answer)"
authit_expect "A: reason names the missing permission" "Requires LocalDialing" "$(authit_line "$out" answer.reason)"
admin permission grant 1009@example.com LocalDialing >"$W/grant.out" 2>&1 || it_fail "admin permission grant" "$(cat "$W/grant.out")"
out=$(sipauth poll --to "$A_PORT" --user 1009 --pw pw1009 --target 2551234 --want forwarded --within 1)
authit_expect "grant seen by A within 1 s (referee:invalidate; cache_max_age is 300)" forwarded \
	"$(authit_line "$out" poll | cut -d' ' -f1)"
it_log "grant: $out"
admin permission revoke 1009@example.com LocalDialing >"$W/revoke.out" 2>&1 || it_fail "admin permission revoke" "$(cat "$W/revoke.out")"
out=$(sipauth poll --to "$A_PORT" --user 1009 --pw pw1009 --target 2551234 --want 403 --within 1)
authit_expect "revoke seen by A within 1 s" 403 "$(authit_line "$out" poll | cut -d' ' -f1)"
it_log "revoke: $out"
# what makes it visible is the channel, not a cache miss: a change written behind referee's
# back (no PUBLISH) is not seen while the cached entry lives, the bare identity published on
# referee:invalidate (SPEC §6) makes it visible
redis-cli -p "$AUTHIT_RPORT" HSET referee:user:1009@example.com permissions LocalDialing >/dev/null
out=$(call "$A_PORT" 1009 pw1009 2551234)
authit_expect "unpublished Redis change not seen (cached user)" 403 "$(authit_line "$out" answer)"
redis-cli -p "$AUTHIT_RPORT" PUBLISH referee:invalidate 1009@example.com >/dev/null
out=$(sipauth poll --to "$A_PORT" --user 1009 --pw pw1009 --target 2551234 --want forwarded --within 1)
authit_expect "... seen within 1 s once published on referee:invalidate" forwarded "$(authit_line "$out" poll | cut -d' ' -f1)"
admin permission revoke 1009@example.com LocalDialing >>"$W/revoke.out" 2>&1 || it_fail "admin permission revoke (2)"
out=$(sipauth poll --to "$A_PORT" --user 1009 --pw pw1009 --target 2551234 --want 403 --within 1)
authit_expect "revoke seen by A within 1 s (2)" 403 "$(authit_line "$out" poll | cut -d' ' -f1)"
admin user show 1009@example.com >"$W/show3.out" 2>&1
grep -q LocalDialing "$W/show3.out" && it_fail "user show after revoke" "$(cat "$W/show3.out")" ||
	it_check "admin user show after revoke: no LocalDialing"

# ---- two instances, one Redis, one secret ---------------------------------------------------
out=$(call "$A_PORT" 1003 pw1003 2551234 --answer-to "$B_PORT" --replay-to "$A_PORT" --next-to "$A_PORT")
authit_expect "nonce issued by A (407 from A)" 407 "$(authit_line "$out" challenge)"
authit_expect "... answered to B: accepted" forwarded "$(authit_line "$out" answer)"
authit_expect "... same nc replayed to A: refused (407)" 407 "$(authit_line "$out" replay)"
authit_expect "... nc+1 to A: accepted" forwarded "$(authit_line "$out" next)"
out=$(call "$B_PORT" 1005 pw1005 2551234 --answer-to "$A_PORT" --replay-to "$B_PORT")
authit_expect "nonce from B accepted by A" forwarded "$(authit_line "$out" answer)"
authit_expect "... the same nc replayed to B: refused" 407 "$(authit_line "$out" replay)"
n=$(redis-cli -p "$AUTHIT_RPORT" --scan --pattern 'referee:nc:*' | wc -l)
[ "$n" -ge 2 ] && it_check "nonce counters kept in Redis ($n referee:nc:* keys)" || it_fail "referee:nc:* keys in Redis" "$n"

# ---- a retransmission while Redis is slow is not a replay ---------------------------------
# Redis stalls (SIGSTOP, shorter than the 2 s reply timeout) while the nonce count of an
# authenticated INVITE is checked; the client retransmits it 0.4 s later. The copy meets
# the count already taken locally: before auth_retx.c knew a waiting check it got 407
# (and the UAC's ACK of that 407 ended the call downstream). Now it is dropped, and the
# original is forwarded once Redis answers.
out=$(call "$A_PORT" 1001 pw1001 2551234) # 1001 cached in A: only the nc check waits
authit_expect "A: 1001 authenticates before the stall" forwarded "$(authit_line "$out" answer)"
dropped0=$(authit_metric "$A_MPORT" referee_auth_retransmissions_dropped_total)
( sleep 0.2 && kill -STOP "$AUTHIT_REDIS_PID" && sleep 1.2 && kill -CONT "$AUTHIT_REDIS_PID" ) &
stall=$!
sleep 0.3
out=$(call "$A_PORT" 1001 pw1001 2551234 --retransmit-after 0.4 --wait 4)
wait "$stall"
kill -CONT "$AUTHIT_REDIS_PID" 2>/dev/null
it_log "retransmission during a Redis stall: $out"
authit_expect "Redis stalled: the answer is forwarded once Redis is back" forwarded "$(authit_line "$out" answer)"
authit_expect "... and its retransmission is not challenged (no 407)" none "$(authit_line "$out" answer.replies)"
dropped1=$(authit_metric "$A_MPORT" referee_auth_retransmissions_dropped_total)
[ "$((dropped1 - dropped0))" -ge 1 ] && it_check "... the copy counted in referee_auth_retransmissions_dropped_total" ||
	it_fail "referee_auth_retransmissions_dropped_total" "$dropped0 -> $dropped1"

# ---- Redis stopped: cached user works, uncached one gets 503 + Retry-After ---------------
out=$(call "$A_PORT" 1001 pw1001 2551234) # 1001 cached in A (looked up above, cache_max_age 300)
authit_expect "A: 1001 still authenticates before the stop" forwarded "$(authit_line "$out" answer)"
it_kill "$AUTHIT_REDIS_PID"
redis-cli -p "$AUTHIT_RPORT" ping >/dev/null 2>&1 && it_die "redis still answers after kill"
out=$(call "$A_PORT" 1001 pw1001 2551234)
authit_expect "Redis down: cached user still authenticates" forwarded "$(authit_line "$out" answer)"
out=$(call "$A_PORT" 1001 pw1001 2551234 --replay-to "$A_PORT")
authit_expect "Redis down: nc replay still refused (local table)" 407 "$(authit_line "$out" replay)"
out=$(call "$B_PORT" 1003 pw1003 2551234) # 1003 and 1005 were looked up by B above
authit_expect "Redis down: user cached in B authenticates on B" forwarded "$(authit_line "$out" answer)"
out=$(call "$B_PORT" 1001 pw1001 2551234 --wait 6) # B never looked 1001 up
authit_expect "Redis down: uncached user (1001 on B) -> 503" 503 "$(authit_line "$out" answer)"
authit_expect "... with Retry-After" 1 "$(printf '%s\n' "$out" | grep -c '^answer.hdr Retry-After: [0-9]')"

# ---- Redis back: recovers by itself ------------------------------------------------------
authit_redis_start redis2
admin user add 1001@example.com --password pw1001 --permission LocalDialing >"$W/readd.out" 2>&1 ||
	it_fail "admin user add after restart" "$(cat "$W/readd.out")"
out=$(sipauth poll --to "$B_PORT" --user 1001 --pw pw1001 --target 2551234 --within 20 --wait 6)
it_log "recovery: $out"
authit_expect "Redis back: B serves the uncached user again" forwarded "$(authit_line "$out" poll | cut -d' ' -f1)"

authit_referee_stop a "$A_PID"
authit_referee_stop b "$B_PID"
[ -s "$W/sipauth.err" ] && it_fail "sipauth.py errors" "$(tail -n 5 "$W/sipauth.err")"
it_finish

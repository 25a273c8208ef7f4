#!/usr/bin/env bash
# test_store_redis.sh - the Redis store end to end (SPEC §6, §7): a private redis-server on
# 127.0.0.1, referee-admin writing users, store instances (tests/store_test_redis in driver
# mode, one process each) reading them through the async path: add -> lookup, grant ->
# visible through the invalidation channel, del -> gone, nc atomic across two processes,
# JTI bound across processes, NOSCRIPT recovery, Redis killed mid-test (cached users keep
# working, uncached UNAVAILABLE, nc degraded to the local table) and restarted (recovery,
# cache flushed). Bounded: every wait has a deadline, every loop a count.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
it_need redis-server redis-cli python3 md5sum

ADMIN=$REFEREE_BUILD_DIR/referee-admin
DRV=$REFEREE_BUILD_DIR/tests/store_test_redis
[ -x "$ADMIN" ] || it_die "no $ADMIN (build the referee-admin target)"
[ -x "$DRV" ] || it_die "no $DRV (build the store_test_redis target)"
W=$IT_WORK
PERMS=(LocalDialing InternationalDialing)

free_tcp_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
RPORT=$(free_tcp_port)
REDIS_PID=""
redis_start() {
	it_spawn "redis-$1" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no
	REDIS_PID=$IT_LAST_PID
	for _ in $(seq 50); do
		[ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	it_die "redis-server did not answer on port $RPORT"
}
rcli() { redis-cli -p "$RPORT" "$@"; }

# driver NAME: start a store instance reading commands from $W/NAME.cmd (written first).
driver() {
	"$DRV" driver "redis://127.0.0.1:$RPORT" "${PERMS[@]}" <"$W/$1.cmd" >"$W/$1.out" 2>"$W/$1.err" &
	IT_PIDS+=($!)
	eval "PID_$1=$!"
}
# wait_for FILE SECONDS: a driver reached a point of its script.
wait_for() {
	for _ in $(seq $(($2 * 10))); do [ -e "$1" ] && return 0; sleep 0.1; done
	return 1
}
# expect NAME LINE: the driver printed exactly LINE.
expect() {
	if grep -qxF -- "$2" "$W/$1.out"; then it_check "$1: $2"; else it_fail "$1: $2" "$(tr '\n' '|' <"$W/$1.out")"; fi
}
wait_exit() { # wait_exit PID SECONDS
	for _ in $(seq $(($2 * 10))); do it_pid_alive "$1" || return 0; sleep 0.1; done
	return 1
}

redis_start 1
referee_secret "$W/secret"
cat >"$W/referee.yaml" <<YAML
listen: [udp://127.0.0.1:$(it_free_udp_port)]
domains: [example.com]
secret_file: secret
store:
  backend: redis
  redis: redis://127.0.0.1:$RPORT
  cache_max_age: 60
rules:
  - hosts: [example.com]
    users: ["9xxx"]
    permissions: [LocalDialing]
  - hosts: [example.com]
    users: ["011."]
    permissions: [InternationalDialing]
YAML
admin() { "$ADMIN" -c "$W/referee.yaml" "$@"; }

# ---- referee-admin writes what the contract says
admin user add 1001@example.com --password pw1 --permission LocalDialing >"$W/add.out" 2>&1 &&
	it_check "admin user add" || it_fail "admin user add" "$(cat "$W/add.out")"
want=$(printf '1001:example.com:pw1' | md5sum | cut -d' ' -f1)
[ "$(rcli HGET referee:user:1001@example.com ha1_md5)" = "$want" ] &&
	it_check "ha1_md5 = MD5(user:realm:password)" || it_fail "ha1_md5 stored"
[ "$(rcli HGET referee:user:1001@example.com permissions)" = LocalDialing ] &&
	it_check "permissions field" || it_fail "permissions field"
rcli HGETALL referee:user:1001@example.com | grep -q pw1 && it_fail "password stored" || it_check "no password in Redis"
admin user show 1001@example.com >"$W/show.out" 2>&1
grep -qx 'permissions: LocalDialing' "$W/show.out" && ! grep -q ha1 "$W/show.out" &&
	it_check "user show (no HA1 without --secrets)" || it_fail "user show" "$(cat "$W/show.out")"
admin explain sip:9123@example.com --as 1001@example.com >"$W/explain.out" 2>&1
grep -q '^verdict: allow' "$W/explain.out" && it_check "explain --as a user holding the permission" ||
	it_fail "explain --as" "$(cat "$W/explain.out")"
admin explain sip:01133@example.com --as 1001@example.com >"$W/explain2.out" 2>&1
grep -q '^verdict: deny' "$W/explain2.out" && it_check "explain: missing permission denied" ||
	it_fail "explain deny" "$(cat "$W/explain2.out")"
admin user add 1001@example.com --password x >/dev/null 2>&1
[ $? -eq 1 ] && it_check "add twice: exit 1" || it_fail "add twice: exit 1"
admin user add >/dev/null 2>&1
[ $? -eq 2 ] && it_check "usage error: exit 2" || it_fail "usage error: exit 2"
admin user add 1003@example.com --password pw3 --permission LocalDialing >/dev/null 2>&1
admin user add 1004@example.com --password pw4 >/dev/null 2>&1
rcli HSET referee:user:bad@example.com ha1_md5 nothex permissions "" >/dev/null
rcli SET referee:user:str@example.com x >/dev/null
admin user list >"$W/list.out" 2>&1
[ "$(tr '\n' ' ' <"$W/list.out")" = "1001@example.com 1003@example.com 1004@example.com bad@example.com str@example.com " ] &&
	it_check "user list" || it_fail "user list" "$(cat "$W/list.out")"

# ---- driver A: lookups, invalidation, NOSCRIPT, Redis down and back
# Each driver first waits (bounded) for its Redis connection: a lookup before it is up is
# UNAVAILABLE by design, and the first "get" must not race the connect.
cat >"$W/A.cmd" <<CMD
until NOT_FOUND nobody@example.com 10000
get 1001@example.com
get nobody@example.com
get bad@example.com
get str@example.com
touch $W/A-1
wait-file $W/granted
expect-perms 1001@example.com LocalDialing,InternationalDialing 5000
touch $W/A-2
wait-file $W/deleted
until NOT_FOUND 1001@example.com 5000
wait-file $W/flushed
nc after-flush 1 2
get 1003@example.com
touch $W/A-3
wait-file $W/redis-down
poll 300
get 1003@example.com
get 1004@example.com
nc down 1 2
nc down 2 2
jti jd dialog-1
jti jd dialog-2
usable
touch $W/A-4
wait-file $W/redis-up
until OK 1004@example.com 15000
usable
until NOT_FOUND 1003@example.com 5000
CMD
driver A
wait_for "$W/A-1" 10 || it_fail "driver A step 1" "$(cat "$W/A.err")"
admin permission grant 1001@example.com InternationalDialing >/dev/null 2>&1 &&
	it_check "admin permission grant" || it_fail "admin permission grant"
touch "$W/granted"
wait_for "$W/A-2" 10 || it_fail "driver A step 2"
admin user del 1001@example.com >/dev/null 2>&1 && it_check "admin user del" || it_fail "admin user del"
touch "$W/deleted"
sleep 0.3
rcli SCRIPT FLUSH >/dev/null
touch "$W/flushed"
wait_for "$W/A-3" 10 || it_fail "driver A step 3"
[ "$(rcli GET referee:nc:after-flush)" = 2 ] && ! grep -q "nc/jti check failed" "$W/A.err" &&
	it_check "NOSCRIPT: script sent again, count stored in Redis" || it_fail "NOSCRIPT recovery"
it_kill "$REDIS_PID"
touch "$W/redis-down"
wait_for "$W/A-4" 10 || it_fail "driver A step 4"
redis_start 2
admin user add 1004@example.com --password pw4 >/dev/null 2>&1
touch "$W/redis-up"
wait_exit "$PID_A" 30 || it_fail "driver A finished"
expect A "get 1001@example.com OK perms=LocalDialing"
expect A "get nobody@example.com NOT_FOUND"
expect A "get bad@example.com NOT_FOUND"
expect A "get str@example.com NOT_FOUND"
grep -q "bad user data key=referee:user:bad@example.com" "$W/A.err" &&
	it_check "bad data logged with its key" || it_fail "bad data logged with its key"
# SPEC §6, issue 13: the limiter is per event AND key, so the second bad hash (looked up in the
# same second as the first) gets its own line too
grep -q "bad user data key=referee:user:str@example.com" "$W/A.err" &&
	it_check "second bad key logged too (limiter per key)" || it_fail "second bad key logged too (limiter per key)" "$(grep 'bad user data' "$W/A.err")"
expect A "expect-perms 1001@example.com ok"
expect A "until NOT_FOUND 1001@example.com NOT_FOUND"
expect A "nc after-flush accepted=2"
expect A "get 1003@example.com OK perms=LocalDialing"
[ "$(grep -c 'get 1003@example.com OK' "$W/A.out")" = 2 ] &&
	it_check "Redis down: cached user keeps working" || it_fail "Redis down: cached user keeps working"
expect A "get 1004@example.com UNAVAILABLE"
expect A "nc down accepted=2"
expect A "nc down accepted=0"
expect A "jti jd dialog-1 OK"
expect A "jti jd dialog-2 REJECT"
expect A "usable no"
expect A "until OK 1004@example.com OK"
expect A "usable yes"
expect A "until NOT_FOUND 1003@example.com NOT_FOUND"

# ---- nc atomic across two store instances (two processes) sharing Redis; JTI across them
# shared: one nonce, counts 1..400 in both; many: 400 nonces walked in opposite directions,
# so the two instances meet and race on the same nonces in the middle.
printf 'wait-file %s\nnc shared 1 400\nnc-many many 1 400 1\njti jx dialog-B\n' "$W/go" >"$W/B.cmd"
printf 'wait-file %s\nnc shared 1 400\nnc-many many 400 1 1\n' "$W/go" >"$W/C.cmd"
driver B
driver C
sleep 0.5 # both connected: start together so their counts interleave
touch "$W/go"
wait_exit "$PID_B" 60 && wait_exit "$PID_C" 60 || it_fail "drivers B and C finished"
dups=$(cat "$W/B.out" "$W/C.out" | grep '^nc-accepted shared ' | sort | uniq -d | wc -l)
total=$(cat "$W/B.out" "$W/C.out" | grep -c '^nc-accepted shared ')
b=$(grep -c '^nc-accepted shared ' "$W/B.out")
c=$(grep -c '^nc-accepted shared ' "$W/C.out")
it_log "nc accepted: B $b, C $c"
[ "$dups" = 0 ] && it_check "nc: no count accepted by both instances ($total accepted)" ||
	it_fail "nc accepted twice" "$dups duplicates"
[ "$(cat "$W/B.out" "$W/C.out" | grep -c '^nc-accepted shared 400$')" = 1 ] &&
	it_check "nc: the top count accepted exactly once" || it_fail "nc: the top count accepted exactly once"
mdups=$(cat "$W/B.out" "$W/C.out" | grep '^nc-accepted many-' | sort | uniq -d | wc -l)
mtotal=$(cat "$W/B.out" "$W/C.out" | grep -c '^nc-accepted many-')
it_log "first uses won: B $(grep -c '^nc-accepted many-' "$W/B.out"), C $(grep -c '^nc-accepted many-' "$W/C.out")"
[ "$mdups" = 0 ] && [ "$mtotal" = 400 ] && it_check "nc: every contested first use won by exactly one instance" ||
	it_fail "nc first use" "$mdups won twice, $mtotal of 400 won"
[ "$(rcli GET referee:nc:shared)" = 400 ] && it_check "referee:nc:shared = 400" || it_fail "referee:nc:shared"
ttl=$(rcli TTL referee:nc:shared)
[ "$ttl" -gt 0 ] 2>/dev/null && it_check "nc key has a TTL" || it_fail "nc key has a TTL" "$ttl"
printf 'jti jx dialog-D\njti jx dialog-B\nnc shared 400 400\n' >"$W/D.cmd"
driver D
wait_exit "$PID_D" 20 || it_fail "driver D finished"
expect B "jti jx dialog-B OK"
expect D "jti jx dialog-D REJECT"
expect D "jti jx dialog-B OK"
expect D "nc shared accepted=0"

# ---- bounded in-flight, and a Redis that stops answering (SIGSTOP) without closing
cat >"$W/E.cmd" <<CMD
until NOT_FOUND nobody@example.com 10000
burst 100 ghost
touch $W/E-1
wait-file $W/stopped
get 1004@example.com
touch $W/E-2
wait-file $W/continued
until OK 1004@example.com 15000
CMD
driver E
wait_for "$W/E-1" 10 || it_fail "driver E step 1"
kill -STOP "$REDIS_PID"
touch "$W/stopped"
wait_for "$W/E-2" 10 || it_fail "driver E step 2"
kill -CONT "$REDIS_PID"
touch "$W/continued"
wait_exit "$PID_E" 30 || it_fail "driver E finished"
expect E "burst parked=64 overload=36 answered=64"
expect E "get 1004@example.com UNAVAILABLE"
expect E "until OK 1004@example.com OK"
grep -q "Redis not answering" "$W/E.err" && it_check "hung Redis detected" || it_fail "hung Redis detected"

# ---- referee itself on the Redis backend: worker connections, parked lookups, txn_resume
cat >"$W/sipcall.py" <<'PY'
# sipcall.py RPORT SINKPORT USER PASSWORD TARGET: INVITE, answer the 407 with digest MD5,
# print "forwarded" when the INVITE reaches the sink, else the final reply code.
import hashlib, random, re, select, socket, sys
rport, sport, user, pw, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); cli.bind(("127.0.0.1", 0))
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("127.0.0.1", sport))
lport = cli.getsockname()[1]
callid, tag = "%x@it" % random.getrandbits(64), "%x" % random.getrandbits(32)
ruri = "sip:%s@example.com" % target
md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
def invite(cseq, auth):
    msg = ("INVITE %s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:%s@example.com>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
           "CSeq: %d INVITE\r\nContact: <sip:%s@127.0.0.1:%d>\r\n%sContent-Length: 0\r\n\r\n") % (
        ruri, lport, random.getrandbits(48), user, tag, ruri, callid, cseq, user, lport,
        ("Proxy-Authorization: %s\r\n" % auth) if auth else "")
    cli.sendto(msg.encode(), ("127.0.0.1", rport))
    r, _, _ = select.select([cli, sink], [], [], 3.0)
    if sink in r:
        return "forwarded", ""
    if cli in r:
        data = cli.recv(65535).decode(errors="replace")
        return data.split(" ", 2)[1], data
    return "timeout", ""
code, reply = invite(1, None)
if code == "407":
    ch = [l for l in reply.split("\r\n") if l.lower().startswith("proxy-authenticate:") and "MD5" in l][0]
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', ch.split(":", 1)[1]))
    ha1 = md5("%s:%s:%s" % (user, p["realm"], pw))
    resp = md5("%s:%s:00000001:c0ffee:auth:%s" % (ha1, p["nonce"], md5("INVITE:" + ruri)))
    auth = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, '
            'qop=auth, nc=00000001, cnonce="c0ffee"%s') % (user, p["realm"], p["nonce"], ruri, resp,
            (', opaque="%s"' % p["opaque"]) if "opaque" in p else "")
    code, reply = invite(2, auth)
print(code)
PY
[ -x "$REFEREE_BIN" ] || it_die "no $REFEREE_BIN (build the referee target)"
SIP_PORT=$(it_free_udp_port)
SINK_PORT=$(it_free_udp_port)
cat >"$W/referee-sip.yaml" <<YAML
listen: [udp://127.0.0.1:$SIP_PORT]
domains: [example.com]
secret_file: $W/secret
threads: {receivers: 1, workers: 2}
routes:
  local: udp://127.0.0.1:$SINK_PORT
health: {interval: 0} # the sink does not answer OPTIONS probes (test_health_sipp.sh probes)
store:
  backend: redis
  redis: redis://127.0.0.1:$RPORT
rules:
  - hosts: [example.com]
    users: ["9xxx"]
    permissions: [LocalDialing]
YAML
"$ADMIN" -c "$W/referee-sip.yaml" user add 2001@example.com --password pw1 --permission LocalDialing >/dev/null 2>&1
"$ADMIN" -c "$W/referee-sip.yaml" user add 2002@example.com --password pw2 >/dev/null 2>&1
"$ADMIN" -c "$W/referee-sip.yaml" user add 2003@example.com --password pw3 --permission LocalDialing >/dev/null 2>&1
referee_start "$W/referee-sip.yaml" "$SIP_PORT"
call() { python3 "$W/sipcall.py" "$SIP_PORT" "$SINK_PORT" "$@" 2>>"$W/sipcall.err"; }
# call_until WANT USER PW TARGET: retry (bounded) until the outcome is WANT; prints the last one.
call_until() {
	local want=$1 got
	shift
	for _ in $(seq 15); do
		got=$(call "$@")
		[ "$got" = "$want" ] && break
		sleep 0.3
	done
	echo "$got"
}
sip_expect() { # sip_expect NAME WANT GOT
	[ "$3" = "$2" ] && it_check "referee: $1 ($2)" || it_fail "referee: $1" "want $2, got $3"
}
sip_expect "digest user from Redis reaches the target" forwarded "$(call_until forwarded 2001 pw1 9123)"
sip_expect "wrong password" 407 "$(call 2001 nope 9123)"
sip_expect "user without the permission" 403 "$(call 2002 pw2 9123)"
"$ADMIN" -c "$W/referee-sip.yaml" permission grant 2002@example.com LocalDialing >/dev/null 2>&1
sip_expect "grant seen through referee:invalidate" forwarded "$(call_until forwarded 2002 pw2 9123)"
it_kill "$REDIS_PID"
sip_expect "Redis down: cached user still authenticates" forwarded "$(call 2001 pw1 9123)"
sip_expect "Redis down: uncached user gets 503" 503 "$(call 2003 pw3 9123)"
redis_start 3
"$ADMIN" -c "$W/referee-sip.yaml" user add 2003@example.com --password pw3 --permission LocalDialing >/dev/null 2>&1
sip_expect "Redis back: recovered by itself" forwarded "$(call_until forwarded 2003 pw3 9123)"
referee_stop_check 10

for f in "$W"/*.err; do
	it_sanitizer_clean "$f" || it_fail "sanitizer report in $(basename "$f")"
done
it_finish

#!/usr/bin/env bash
# test_store_sentinel.sh - referee on Redis Sentinel through a failover (SPEC §12): a master,
# a replica and three sentinels (quorum 2) on free loopback ports, users written with
# referee-admin through the sentinel URL, one referee (store.redis: redis-sentinel://...) and
# SIPp authenticated calls before, during and after the master is SIGKILLed. Reported: failed
# calls by phase (none allowed for the cached users), the time from promotion until a user
# never looked up before authenticates again (at most 10 s), a nonce-count replay refused
# after the failover, the failover seen in /metrics, and the same referee process throughout.
# Bounded: every wait has a deadline, every SIPp run a call count and a timeout.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_redisha.sh"

it_need redis-server redis-sentinel redis-cli sipp python3 ss timeout
ADMIN=${REFEREE_ADMIN_BIN:-$REFEREE_BUILD_DIR/referee-admin}
[ -x "$ADMIN" ] || it_die "no $ADMIN (build the referee-admin target)"
W=$IT_WORK

read -r MPORT RPORT S1 S2 S3 M_HTTP <<<"$(rha_ports 6)"
R_PORT=$(it_free_udp_port)
UAS_PORT=$(it_free_udp_port)
[ "$R_PORT" != "$UAS_PORT" ] || it_die "free port picks collided, run again"

rha_sentinel_set "$MPORT" "$RPORT" "$S1" "$S2" "$S3"
MASTER_PID=$RHA_MASTER_PID
# the sentinels must know the replica and each other before a failover can happen
sentinel_field() { redis-cli -p "$1" SENTINEL master mymaster 2>/dev/null | awk -v k="$2" 'p { print; exit } $0 == k { p = 1 }'; }
ready=0
for _ in $(seq 200); do
	ready=1
	for s in "$S1" "$S2" "$S3"; do
		[ "$(sentinel_field "$s" num-slaves)" = 1 ] && [ "$(sentinel_field "$s" num-other-sentinels)" = 2 ] || ready=0
	done
	[ "$ready" = 1 ] && break
	sleep 0.1
done
[ "$ready" = 1 ] && it_check "three sentinels see the master, the replica and each other" ||
	it_die "sentinels not ready: $(sentinel_field "$S1" num-slaves) replicas, $(sentinel_field "$S1" num-other-sentinels) other sentinels"

referee_secret "$W/secret"
cat >"$W/referee.yaml" <<EOF
listen: [udp://127.0.0.1:$R_PORT]
domains: [example.com]
secret_file: $W/secret
threads: {receivers: 2, workers: 2}
routes:
  local: udp://127.0.0.1:$UAS_PORT
health: {interval: 0} # the sink does not answer OPTIONS probes (test_health_sipp.sh probes)
store:
  backend: redis
  redis: redis-sentinel://127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3/mymaster
  cache_max_age: 300
auth:
  algorithms: [MD5]
  failure_limit: {count: 100000, window: 60}
metrics:
  listen: 127.0.0.1:$M_HTTP
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
  - {hosts: [example.com], users: ["011."], permissions: [InternationalDialing]}
EOF
admin() { "$ADMIN" -c "$W/referee.yaml" "$@"; }

# ---- users through the sentinels: written on the master, replicated ---------------------
rha_add_users "$W/referee.yaml" $(seq 1000 1019)
CACHED=("${RHA_USERS[@]}")
rha_add_users "$W/referee.yaml" 1100 1101 1102
authit_expect "referee-admin wrote on the master the sentinels name" "$(authit_ha1_md5 1001 pw1001)" \
	"$(redis-cli -p "$MPORT" HGET referee:user:1001@example.com ha1_md5)"
for _ in $(seq 100); do
	[ -n "$(redis-cli -p "$RPORT" HGET referee:user:1102@example.com ha1_md5)" ] && break
	sleep 0.1
done
[ -n "$(redis-cli -p "$RPORT" HGET referee:user:1102@example.com ha1_md5)" ] &&
	it_check "users replicated to the replica" || it_die "users not replicated to the replica"
admin user list >"$W/list.out" 2>&1
authit_expect "admin user list through the sentinels" 23 "$(wc -l <"$W/list.out")"

sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" 120
authit_referee_start referee "$W/referee.yaml" "$R_PORT"
REF_PID=$AUTHIT_PID
authit_wait_tcp_port "$M_HTTP" 10 || it_die "/metrics not listening on $M_HTTP"
out=$(sipauth poll --to "$R_PORT" --user 1000 --pw pw1000 --target 2551234 --within 10)
authit_expect "referee found the master through the sentinels" forwarded "$(authit_line "$out" poll | cut -d' ' -f1)"
authit_expect "referee_store_redis_nodes" 1 "$(authit_metric "$M_HTTP" referee_store_redis_nodes)"

# ---- before: every cached user calls (and is cached) -------------------------------------
authit_sipp_csv "$W/cached.csv" 2551234 "${CACHED[@]}"
sipp_uac_run before 40 20 40 "$R_PORT" "$IT_SIPP_DIR/auth_uac_call.xml" -inf "$W/cached.csv"
BEFORE_FAILED=$SIPP_FAILED
sipp_uac_expect "before the failover: authenticated calls" 40

# ---- during: calls keep coming while the master is SIGKILLed and a replica promoted -----
DURING_CALLS=300
(
	sipp_uac_run during "$DURING_CALLS" 30 60 "$R_PORT" "$IT_SIPP_DIR/auth_uac_call.xml" -inf "$W/cached.csv"
	echo "$SIPP_RC $SIPP_OK $SIPP_FAILED" >"$W/during.result"
) &
DURING_PID=$!
sleep 2.5
T_KILL=$(rha_now_ms)
kill -KILL "$MASTER_PID"
it_log "master (port $MPORT) SIGKILLed"
T_PROMOTED=""
for _ in $(seq 300); do
	if [ "$(rha_sentinel_master "$S1")" = "127.0.0.1 $RPORT" ]; then
		T_PROMOTED=$(rha_now_ms)
		break
	fi
	sleep 0.1
done
[ -n "$T_PROMOTED" ] && it_check "sentinels promoted the replica ($((T_PROMOTED - T_KILL)) ms after the kill)" ||
	it_die "the sentinels did not promote the replica within 30 s"
# a user never looked up before (so not cached): back within 10 s of the promotion
out=$(sipauth poll --to "$R_PORT" --user 1100 --pw pw1100 --target 2551234 --within 12 --wait 1)
T_BACK=$(rha_now_ms)
it_log "uncached user after promotion: $out"
BACK_MS=$((T_BACK - T_PROMOTED))
if [ "$(authit_line "$out" poll | cut -d' ' -f1)" = forwarded ] && [ "$BACK_MS" -le 10000 ]; then
	it_check "uncached user authenticates again ${BACK_MS} ms after the promotion (<= 10 s)"
else
	it_fail "uncached user back within 10 s of the promotion" "$(authit_line "$out" poll) after $BACK_MS ms"
fi
wait "$DURING_PID"
read -r D_RC D_OK D_FAILED <"$W/during.result"
it_log "during: sipp rc=$D_RC successful=$D_OK failed=$D_FAILED"
if [ "$D_OK" = "$DURING_CALLS" ] && [ "$D_FAILED" = 0 ]; then
	it_check "during the failover: $D_OK/$DURING_CALLS calls of cached users, 0 failed"
else
	it_fail "during the failover: no failed call for cached users" "successful $D_OK of $DURING_CALLS, failed $D_FAILED (see $W/during/)"
	tail -n 20 "$W/during/errors.log" 2>/dev/null
fi

# ---- after: replay refused, calls, metrics, same process ---------------------------------
out=$(sipauth call --to "$R_PORT" --user 1101 --pw pw1101 --target 2551234 --replay-to "$R_PORT")
authit_expect "after the failover: authenticated (uncached user 1101)" forwarded "$(authit_line "$out" answer)"
authit_expect "after the failover: the same nonce-count replayed is refused" 407 "$(authit_line "$out" replay)"
n=$(redis-cli -p "$RPORT" --scan --pattern 'referee:nc:*' | wc -l)
[ "$n" -ge 1 ] && it_check "nonce counters written on the new master ($n keys)" || it_fail "referee:nc:* on the new master" "$n"
sipp_uac_run after 40 20 40 "$R_PORT" "$IT_SIPP_DIR/auth_uac_call.xml" -inf "$W/cached.csv"
AFTER_FAILED=$SIPP_FAILED
sipp_uac_expect "after the failover: authenticated calls" 40
admin user add 1200@example.com --password pw1200 --permission LocalDialing >"$W/admin2.out" 2>&1 &&
	it_check "referee-admin writes on the new master" || it_fail "referee-admin after the failover" "$(cat "$W/admin2.out")"
out=$(sipauth poll --to "$R_PORT" --user 1200 --pw pw1200 --target 2551234 --within 5)
authit_expect "a user added after the failover authenticates" forwarded "$(authit_line "$out" poll | cut -d' ' -f1)"
fo=$(authit_metric "$M_HTTP" referee_store_redis_failovers_total)
[ "$fo" != NA ] && [ "$fo" -ge 1 ] && it_check "referee_store_redis_failovers_total = $fo" ||
	it_fail "referee_store_redis_failovers_total >= 1" "$fo"
deg=$(authit_metric "$M_HTTP" referee_store_events_total 'event="degraded"')
unav=$(authit_metric "$M_HTTP" referee_store_events_total 'event="unavailable"')
it_log "failed calls by phase: before=$BEFORE_FAILED during=$D_FAILED after=$AFTER_FAILED; degraded=$deg unavailable=$unav; promotion $((T_PROMOTED - T_KILL)) ms after the kill, uncached user back $BACK_MS ms after it"
echo "RESULT failed calls before=$BEFORE_FAILED during=$D_FAILED after=$AFTER_FAILED degraded=$deg unavailable=$unav promote_ms=$((T_PROMOTED - T_KILL)) uncached_back_ms=$BACK_MS"
it_pid_alive "$REF_PID" && it_check "referee never restarted (pid $REF_PID throughout)" || it_fail "referee died"
authit_referee_stop referee "$REF_PID"
[ -s "$W/sipauth.err" ] && it_fail "sipauth.py errors" "$(tail -n 5 "$W/sipauth.err")"
it_finish

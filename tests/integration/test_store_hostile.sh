#!/usr/bin/env bash
# test_store_hostile.sh - a hostile or broken Redis cannot exhaust referee's memory
# (store_redis_bound.c): referee's Redis store points at fake_redis.py, a RESP server on
# 127.0.0.1 that answers normally for good users and, for the HGETALL of some users, with
# replies over the bounds: an aggregate header of 100 000 000 and of 2 000 000 000
# elements, a 1 GB bulk string (streamed in chunks, at most 64 MiB sent), a tree of
# 400 000 integers, 2000 strings of 5000 bytes. For each: the digest-authenticated caller
# gets 503 with Retry-After (as for a Redis failure), referee_store_redis_replies_refused_total
# rises by exactly 1, the log names the bound and the server, referee stays alive with a
# bounded RSS, and a good user never looked up before is served after the reconnect. The
# blocking client (referee-admin) refuses the same replies with a clear error.
# SIP traffic: sipauth.py (lib_auth.sh). Bounded: every wait has a deadline.
# it_check always returns 0, so "test && it_check ... || it_fail ..." is an if/else.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"

it_need python3 ss timeout
W=$IT_WORK
FAKE_PY=$(dirname "$0")/fake_redis.py
RPORT=$(authit_free_tcp_port)
MPORT=$(authit_free_tcp_port)
PORT=$(it_free_udp_port)
[ "$RPORT" != "$MPORT" ] || it_die "free port picks collided, run again"

it_spawn fake python3 "$FAKE_PY" "$RPORT" goodpw
authit_wait_tcp_port "$RPORT" 10 || it_die "fake_redis.py did not listen on $RPORT: $(cat "$W/fake.err")"

referee_secret "$W/secret"
cat >"$W/referee.yaml" <<EOF
listen: [udp://127.0.0.1:$PORT]
domains: [example.com]
secret_file: $W/secret
threads: {receivers: 1, workers: 2}
routes:
  local: udp://127.0.0.1:9
health: {interval: 0}
metrics: {listen: "127.0.0.1:$MPORT"}
store:
  backend: redis
  redis: redis://127.0.0.1:$RPORT
  cache_max_age: 300
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
EOF
authit_referee_start ref "$W/referee.yaml" "$PORT"
PID=$AUTHIT_PID
authit_wait_tcp_port "$MPORT" 10 || it_die "no metrics listener on $MPORT"

refused() { authit_metric "$MPORT" referee_store_redis_replies_refused_total; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status" 2>/dev/null || echo NA; }

# a good user first: the links are up and serve
out=$(sipauth poll --to "$PORT" --user 2001 --pw goodpw --target 2551234 --within 10)
authit_expect "good user 2001 served by the fake Redis" forwarded "$(authit_line "$out" poll | cut -d' ' -f1)"
authit_expect "no reply refused yet" 0 "$(refused)"
RSS0=$(rss_kb)

good=2001
n=0
for hostile in h100m h2g hbulk htree hstrings; do
	n=$((n + 1))
	before=$(refused)
	out=$(sipauth call --to "$PORT" --user "$hostile" --pw goodpw --target 2551234 --wait 8)
	authit_expect "$hostile: caller gets 503" 503 "$(authit_line "$out" answer)"
	authit_expect "$hostile: ... with Retry-After" 1 "$(printf '%s\n' "$out" | grep -c '^answer.hdr Retry-After: [0-9]')"
	after=$(refused)
	authit_expect "$hostile: replies_refused_total rose by exactly 1 ($before -> $after)" 1 $((after - before))
	if it_pid_alive "$PID"; then it_check "$hostile: referee alive (RSS $(rss_kb) kB)"; else it_die "$hostile: referee died"; fi
	# the fake prints its line once referee hung up on the reply
	for _ in $(seq 100); do grep -q "^hostile $hostile " "$W/fake.out" && break; sleep 0.1; done
	line=$(grep "^hostile $hostile " "$W/fake.out")
	it_log "fake: $line"
	authit_expect "$hostile: referee dropped the connection" 1 "$(sed -n 's/.*peer_closed=\([01]\).*/\1/p' <<<"$line")"
	good=$((good + 1))
	out=$(sipauth poll --to "$PORT" --user "$good" --pw goodpw --target 2551234 --within 10)
	authit_expect "$hostile: new good user $good served after the reconnect" forwarded \
		"$(authit_line "$out" poll | cut -d' ' -f1)"
	sleep 1.1 # the bound's log line is limited to one a second per server
done

authit_expect "log: one bound line per hostile reply, naming server and role" "$n" \
	"$(grep -c "Redis reply over the bounds (.*) redis=127.0.0.1:$RPORT role=command; connection dropped" "$W/ref.err")"
for what in "aggregate of 100000000 elements" "aggregate of 2000000000 elements" "bytes buffered for one reply" \
	"reply of more than 8388608 bytes"; do
	grep -q "Redis reply over the bounds (.*$what" "$W/ref.err" && it_check "log names the bound: $what" ||
		it_fail "log names the bound: $what" "$(grep -m 3 'over the bounds' "$W/ref.err")"
done
RSS1=$(rss_kb)
it_log "RSS before the hostile replies ${RSS0} kB, after ${RSS1} kB"
# a reply is refused at 8 MiB of objects (or buffered bytes): the process never grew by gigabytes
[ "$RSS1" != NA ] && [ $((RSS1 - RSS0)) -lt 262144 ] && it_check "RSS grew by less than 256 MiB ($RSS0 -> $RSS1 kB)" ||
	it_fail "RSS bounded" "$RSS0 -> $RSS1 kB"

# the blocking client (referee-admin; the topology thread's calls use the same helpers) reads
# under the same bounds: a clear error and exit 1, not gigabytes
ADMIN=${REFEREE_ADMIN_BIN:-$REFEREE_BUILD_DIR/referee-admin}
[ -x "$ADMIN" ] || it_die "no $ADMIN (build the referee-admin target)"
for hostile in h2g hbulk htree; do
	timeout 60 "$ADMIN" -c "$W/referee.yaml" user show "$hostile@example.com" >"$W/admin-$hostile.out" 2>&1
	rc=$?
	[ "$rc" = 1 ] && grep -q "referee-admin: 127.0.0.1:$RPORT: Redis reply over the bounds (" "$W/admin-$hostile.out" &&
		it_check "referee-admin user show $hostile: exit 1, reply over the bounds" ||
		it_fail "referee-admin user show $hostile" "exit $rc: $(head -c 300 "$W/admin-$hostile.out")"
done
timeout 60 "$ADMIN" -c "$W/referee.yaml" user show 2001@example.com >"$W/admin-good.out" 2>&1 &&
	grep -qx 'permissions: LocalDialing' "$W/admin-good.out" && it_check "referee-admin user show of a good user" ||
	it_fail "referee-admin user show of a good user" "$(cat "$W/admin-good.out")"

authit_referee_stop ref "$PID"
[ -s "$W/sipauth.err" ] && it_fail "sipauth.py errors" "$(tail -n 5 "$W/sipauth.err")"
it_finish

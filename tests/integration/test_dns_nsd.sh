#!/usr/bin/env bash
# test_dns_nsd.sh - RFC 3263 next hops with a real DNS server (SPEC §10): NSD serves a test zone
# on 127.0.0.1 at a free port (NAPTR -> SRV -> A, TTL 2 s, SOA minimum 3 s) and referee uses it
# through dns.servers. routes.local is the name sip:example.test (no port: NAPTR, then SRV);
# its SRV set is pbx1 (priority 10, weight 3), pbx2 (10, 1), pbx3 (20, 1), three python
# listeners (lib_transfer.sh's tua.py) on free ports.
#   1. CALLS SIPp calls all succeed; pbx1 gets 3/4 of them, pbx2 1/4, pbx3 (priority 20) none.
#   2. TTL honoured: the queries NSD counts (nsd-control stats) while calls run for WINDOW s
#      fit re-resolution every TTL (not one per request, not one only).
#   3. Zone change: pbx1 moves to priority 30 and NSD reloads; after the TTL every call goes
#      to pbx2.
#   4. No routes.outbound: a foreign Request-URI host that exists (example.test) is reached;
#      one that does not (NXDOMAIN) gets 503 and counts referee_dns_errors_total{reason="nxdomain"}.
# Env: CALLS (default 200).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_transfer.sh"

CALLS=${CALLS:-200}
TTL=2
it_need sipp nsd nsd-control python3 timeout curl
W=$IT_WORK
PORT=$(it_free_udp_port)
M_PORT=$(it_free_tcp_port)
PBX1=$(it_free_udp_port)
PBX2=$(it_free_udp_port)
PBX3=$(it_free_udp_port)

# ---- NSD with the test zone -----------------------------------------------------------------
zone() { # zone PBX1_PRIORITY SERIAL
	cat >"$W/nsd/example.test.zone" <<EOF
\$ORIGIN example.test.
\$TTL $TTL
@         IN SOA   ns hostmaster $2 60 60 600 3
@         IN NS    ns
ns        IN A     127.0.0.1
@         IN NAPTR 10 50 "s" "SIP+D2U" "" _sip._udp.example.test.
_sip._udp IN SRV   $1 3 $PBX1 pbx1
_sip._udp IN SRV   10 1 $PBX2 pbx2
_sip._udp IN SRV   20 1 $PBX3 pbx3
pbx1      IN A     127.0.0.1
pbx2      IN A     127.0.0.1
pbx3      IN A     127.0.0.1
EOF
}
mkdir -p "$W/nsd"
zone 10 1
nsd_start "$W/nsd" example.test control
nsd_queries() { nsd-control -c "$W/nsd/nsd.conf" stats_noreset 2>/dev/null | sed -n 's/^num\.queries=//p'; }
for _ in $(seq 50); do [ -n "$(nsd_queries)" ] && break; sleep 0.1; done
[ -n "$(nsd_queries)" ] || it_die "nsd-control stats did not answer"

# ---- the three next hops and referee ----------------------------------------------------------
xfer_write_tua
xfer_serve pbx1 "$PBX1" 300
xfer_serve pbx2 "$PBX2" 300
xfer_serve pbx3 "$PBX3" 300
invites() { ls "$W/$1"/*-INVITE.sip 2>/dev/null | wc -l; }
referee_secret "$W/secret"
printf 'users: []\n' >"$W/users.yaml"
cat >"$W/referee.yaml" <<EOF
listen: [udp://127.0.0.1:$PORT]
domains: [example.com]
secret_file: $W/secret
routes:
  local: sip:example.test
dns: {servers: ["127.0.0.1:$NSD_PORT"]}
health: {interval: 0}
trusted: [127.0.0.0/8]
store: {backend: file, file: $W/users.yaml}
metrics: {listen: "127.0.0.1:$M_PORT"}
EOF
referee_start "$W/referee.yaml" "$PORT"
metric() { curl -s -m 5 "http://127.0.0.1:$M_PORT/metrics" | awk -v s="$1" '$1 == s { print $2; f = 1 } END { if (!f) print 0 }'; }
# the route name is resolved at start: NAPTR, SRV, then A and AAAA of three targets
for _ in $(seq 50); do [ "$(metric referee_dns_queries_total)" -ge 8 ] && break; sleep 0.1; done
sleep 0.5

# ---- 1. priorities and weights --------------------------------------------------------------
q0=$(nsd_queries)
t0=$(date +%s.%N)
sipp_uac_run calls "$CALLS" 50 $((CALLS / 50 + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect "calls to the SRV targets of sip:example.test" "$CALLS"
t1=$(date +%s.%N)
q1=$(nsd_queries)
sleep 0.5
p1=$(invites pbx1)
p2=$(invites pbx2)
p3=$(invites pbx3)
if [ "$p3" -eq 0 ] && [ $((p1 + p2)) -eq "$CALLS" ] && [ "$p1" -ge $((CALLS * 65 / 100)) ] && [ "$p1" -le $((CALLS * 85 / 100)) ]; then
	it_check "SRV priority and weight honoured (pbx1 $p1, pbx2 $p2, priority-20 pbx3 $p3)"
else
	it_fail "SRV priority and weight honoured" "pbx1 $p1, pbx2 $p2, pbx3 $p3 of $CALLS (want 3:1, none at pbx3)"
fi

# ---- 2. TTL honoured: one resolution (8 queries) per TTL, not per request -------------------
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
dq=$((q1 - q0))
max=$(awk -v s="$secs" -v t="$TTL" 'BEGIN { printf "%d", (s / t + 2) * 8 }')
if [ "$dq" -ge 8 ] && [ "$dq" -le "$max" ]; then
	it_check "TTL honoured ($dq queries at NSD in ${secs}s of calls with TTL ${TTL}s; at most $max)"
else
	it_fail "TTL honoured" "$dq queries at NSD in ${secs}s (want 8..$max for TTL ${TTL}s)"
fi

# ---- 3. a zone change is picked up after the TTL --------------------------------------------
zone 30 2
nsd-control -c "$W/nsd/nsd.conf" reload example.test >"$W/nsd/reload.out" 2>&1 || it_fail "nsd-control reload" "$(cat "$W/nsd/reload.out")"
sleep $((TTL + 2))
sipp_uac_run calls2 100 50 60 "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect "calls after the zone change" 100
sleep 0.5
d1=$(($(invites pbx1) - p1))
d2=$(($(invites pbx2) - p2))
if [ "$d1" -eq 0 ] && [ "$d2" -eq 100 ]; then
	it_check "zone change picked up after the TTL (pbx1 now priority 30: pbx2 got all 100)"
else
	it_fail "zone change picked up after the TTL" "pbx1 got $d1, pbx2 got $d2 of 100"
fi

# ---- 4. foreign Request-URI hosts without routes.outbound -----------------------------------
sip_message() { # sip_message HOST CALLID: the status line of the answer (or a message forwarded)
	python3 - "$PORT" "$1" "$2" <<'EOF'
import socket, sys
port, host, cid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(3)
lp = s.getsockname()[1]
msg = (f"MESSAGE sip:bob@{host} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK{cid}\r\n"
       f"From: <sip:alice@example.com>;tag=m1\r\nTo: <sip:bob@{host}>\r\nCall-ID: {cid}\r\n"
       "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
s.sendto(msg.encode(), ("127.0.0.1", port))
try:
    print(s.recv(4096).decode(errors="replace").split("\r\n")[0])
except socket.timeout:
    print("timeout")
EOF
}
m1=$(($(ls "$W"/pbx2/*-MESSAGE.sip 2>/dev/null | wc -l) + $(ls "$W"/pbx1/*-MESSAGE.sip 2>/dev/null | wc -l)))
r=$(sip_message example.test "fh1-$$")
m2=$(($(ls "$W"/pbx2/*-MESSAGE.sip 2>/dev/null | wc -l) + $(ls "$W"/pbx1/*-MESSAGE.sip 2>/dev/null | wc -l)))
if [ "$r" = "SIP/2.0 200 OK" ] && [ $((m2 - m1)) -eq 1 ]; then
	it_check "foreign host resolved without routes.outbound (MESSAGE to example.test reached its SRV target)"
else
	it_fail "foreign host resolved without routes.outbound" "answer '$r', $((m2 - m1)) MESSAGE at the targets"
fi
e0=$(metric 'referee_dns_errors_total{reason="nxdomain"}')
first=$(sip_message nohost.example.test "nx1-$$")
second=""
for _ in $(seq 20); do
	sleep 0.25
	second=$(sip_message nohost.example.test "nx2-$$-$RANDOM")
	[ "$second" != "SIP/2.0 503 Resolving Next Hop" ] && break
done
e1=$(metric 'referee_dns_errors_total{reason="nxdomain"}')
if [[ $first == "SIP/2.0 503 "* ]] && [ "$second" = "SIP/2.0 503 Next Hop Not Resolved" ] && [ "$e1" -gt "$e0" ]; then
	it_check "NXDOMAIN -> 503 and a counted error (first '$first', then '$second', nxdomain errors $e0 -> $e1)"
else
	it_fail "NXDOMAIN -> 503 and a counted error" "first '$first', then '$second', nxdomain errors $e0 -> $e1"
fi
grep -q 'reason=nxdomain name=nohost.example.test' "$W/referee.err" && it_check "NXDOMAIN logged" ||
	it_fail "NXDOMAIN logged" "no 'reason=nxdomain' line in referee.err"

referee_stop_check 10
it_kill "$NSD_PID"
it_finish

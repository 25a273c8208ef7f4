#!/usr/bin/env bash
# test_ipv6_sipp.sh - IPv6 end to end (SPEC §10: IPv6 wherever IPv4 is accepted): referee listens
# on udp://[::1]; routes.local has two IPv6 sinks, one written udp://[::1]:A and one as the name
# sip:pbx6.example.test:B, which NSD (on 127.0.0.1) resolves with an AAAA record only; health
# probes go over IPv6 to the literal one. SIPp calls from [::1] all succeed and reach both sinks;
# a request whose Via sent-by is not its source gets an IPv6 received= (RFC 5118: no brackets)
# and rport; the signed Record-Route and our Via carry the bracketed IPv6 listen address.
# Env: CALLS (default 100).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

CALLS=${CALLS:-100}
it_need sipp nsd python3 timeout
W=$IT_WORK
free6() { python3 -c 'import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0)); print(s.getsockname()[1])'; }
python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' 2>/dev/null ||
	it_die "no IPv6 loopback (::1) on this machine"
PORT=$(free6)
A=$(free6)
B=$(free6)

# ---- NSD: pbx6.example.test has only an AAAA record ---------------------------------------
mkdir -p "$W/nsd"
cat >"$W/nsd/example.test.zone" <<'EOF'
$ORIGIN example.test.
$TTL 60
@    IN SOA  ns hostmaster 1 60 60 600 5
@    IN NS   ns
ns   IN A    127.0.0.1
pbx6 IN AAAA ::1
EOF
nsd_start "$W/nsd" example.test

# ---- two SIPp sinks on [::1] -------------------------------------------------------------
sink6() { # sink6 NAME PORT
	mkdir -p "$W/$1"
	(cd "$W/$1" && exec timeout 200 sipp -sf "$IT_SIPP_DIR/uas_probed.xml" -i ::1 -p "$2" -nostdin \
		-trace_counts -trace_msg -message_file "$W/$1/messages.log" </dev/null >"$W/$1/out" 2>"$W/$1/err") &
	IT_LAST_PID=$!
	IT_PIDS+=("$IT_LAST_PID")
	for _ in $(seq 50); do ss -Hlun "src [::1]:$2" 2>/dev/null | grep -q . && return 0; sleep 0.1; done
	cat "$W/$1/err"
	it_die "SIPp sink $1 did not bind [::1]:$2"
}
sink6 sink_a "$A"
sink6 sink_b "$B"
invites() { grep -c '^INVITE ' "$W/$1/messages.log" 2>/dev/null || echo 0; }

referee_secret "$W/secret"
printf 'users: []\n' >"$W/users.yaml"
cat >"$W/referee.yaml" <<EOF
listen: ["udp://[::1]:$PORT"]
domains: [example.com]
secret_file: $W/secret
routes:
  local:
    - "udp://[::1]:$A"
    - "sip:pbx6.example.test:$B"
dns: {servers: ["127.0.0.1:$NSD_PORT"]}
health: {interval: 1, failures: 2}
store: {backend: file, file: $W/users.yaml}
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: []}
EOF
"$REFEREE_BIN" -c "$W/referee.yaml" --check >"$W/check.out" 2>&1 || { cat "$W/check.out"; it_die "--check refused the config"; }
it_spawn referee "$REFEREE_BIN" -c "$W/referee.yaml"
REFEREE_PID=$IT_LAST_PID
for _ in $(seq 100); do ss -Hlun "src [::1]:$PORT" 2>/dev/null | grep -q . && break; sleep 0.1; done
ss -Hlun "src [::1]:$PORT" 2>/dev/null | grep -q . || { tail "$W/referee.err"; it_die "referee did not bind [::1]:$PORT"; }
sleep 2 # the name resolves, the literal sink answers its first probes

# ---- calls over IPv6 ---------------------------------------------------------------------
d=$W/calls
mkdir -p "$d"
lport=$(free6)
(cd "$d" && exec timeout 60 sipp "[::1]:$PORT" -sf "$IT_SIPP_DIR/uac_call.xml" -s 2551234 -i ::1 -p "$lport" \
	-m "$CALLS" -r 50 -nostdin -recv_timeout 10000 -trace_err -error_file "$d/errors.log" \
	-trace_stat -stf "$d/stat.csv" -fd 1 </dev/null >"$d/out" 2>"$d/err")
rc=$?
ok=$(sipp_stat_last "$d/stat.csv" 'SuccessfulCall(C)')
if [ "$rc" -eq 0 ] && [ "$ok" = "$CALLS" ]; then
	it_check "calls over IPv6 ($ok/$CALLS)"
else
	it_fail "calls over IPv6" "sipp exit $rc, $ok of $CALLS successful (see $d/)"
	tail -n 5 "$d/errors.log" 2>/dev/null
fi
sleep 1.5
ia=$(invites sink_a)
ib=$(invites sink_b)
if [ "$ia" -gt 0 ] && [ "$ib" -gt 0 ] && [ $((ia + ib)) -ge "$CALLS" ]; then
	it_check "both IPv6 sinks got calls, one found by AAAA ($ia and $ib INVITEs)"
else
	it_fail "both IPv6 sinks got calls" "udp://[::1]:$A got $ia, sip:pbx6.example.test:$B got $ib"
fi
tr -d '\r' <"$W/sink_a/messages.log" >"$W/sink_a/messages.txt"
if grep -q "^Record-Route: <sip:\[::1\]:$PORT;lr" "$W/sink_a/messages.txt" &&
	grep -q "^Via: SIP/2.0/UDP \[::1\]:$PORT;branch=z9hG4bK-rf-" "$W/sink_a/messages.txt"; then
	it_check "Via and Record-Route carry [::1]:$PORT"
else
	it_fail "Via and Record-Route carry [::1]:$PORT" "see $W/sink_a/messages.txt"
fi
n_opt=$(grep -c '^OPTIONS ' "$W/sink_a/messages.log")
[ "$n_opt" -gt 0 ] && it_check "health probes over IPv6 ($n_opt OPTIONS at the literal sink)" ||
	it_fail "health probes over IPv6" "no OPTIONS at [::1]:$A"

# ---- IPv6 received= ---------------------------------------------------------------------
before=$(invites sink_a)$(invites sink_b)
python3 - "$PORT" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::1", 0))
port = int(sys.argv[1])
for i in range(8):
    msg = ("INVITE sip:2551234@example.com SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP phone.example.net:5099;branch=z9hG4bKv6recv{i};rport\r\n"
           f"From: <sip:caller@it.invalid>;tag=v6{i}\r\nTo: <sip:2551234@example.com>\r\n"
           f"Call-ID: v6-received-{i}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("::1", port))
EOF
sleep 1.5
cat "$W/sink_a/messages.log" "$W/sink_b/messages.log" | tr -d '\r' >"$W/all.txt"
n_recv=$(grep -E '^Via: SIP/2.0/UDP phone\.example\.net:5099;branch=z9hG4bKv6recv[0-9]' "$W/all.txt" |
	grep -E '[;]received=::1(;|$)' | grep -cE '[;]rport=[0-9]+(;|$)')
if [ "$n_recv" -ge 8 ]; then
	it_check "IPv6 received=::1 and rport on the sender's Via ($n_recv requests)"
else
	it_fail "IPv6 received= and rport" "$n_recv of 8 relayed INVITEs with received=::1;rport (see $W/all.txt)"
	grep -m 2 'phone.example.net' "$W/all.txt"
fi

referee_stop_check 10
it_kill "$NSD_PID"
it_finish

#!/usr/bin/env bash
# test_stream_tcp.sh - SIP over TCP through referee (SPEC §9, RFC 3261 §18, RFC 5626 §4.4.1):
#   - SIPp UAC over TCP, one connection for every call (-t t1) and one per call (-t tn),
#     -> referee (udp:// and tcp:// on one port) -> SIPp UAS over UDP: every call completes;
#     the UAS sees referee's Via as SIP/2.0/UDP and two signed Record-Routes (the TCP side
#     and the UDP side, RFC 5658), the caller's Via with received and rport;
#   - after a SIGHUP that makes routes.local a tcp:// next hop, SIPp UDP UAC -> referee ->
#     SIPp UAS over TCP (referee opens and reuses the connection);
#   - raw clients (python3): CRLFCRLF ping gets CRLF; a request without Content-Length gets
#     400 and the connection closes, also when its header section is larger than a txn's inline
#     buffer (6 KB); an oversize message closes the connection; a slow
#     sender is cut off after tcp.read_timeout; the 6th..8th connection from one source is
#     refused (tcp.max_per_source 5); each counted in /metrics;
#   - SIGTERM: exit 0, no sanitizer report.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"

CALLS=${CALLS:-100}
RATE=${RATE:-50}
it_need sipp python3 ss timeout
PORT=$(stream_free_port)
UAS_PORT=$(it_free_udp_port)
TCP_UAS_PORT=$(authit_free_tcp_port)
MPORT=$(authit_free_tcp_port)

sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" 300 -trace_msg -message_file "$IT_WORK/uas/messages.log"

cat >"$IT_WORK/users.yaml" <<'EOF'
users: []
EOF
referee_config "$IT_WORK/referee.yaml" "$PORT" "$UAS_PORT" "$(cat <<EOF
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: []}
metrics: {listen: 127.0.0.1:$MPORT}
tcp: {max_per_source: 5, read_timeout: 2, max_message: 8192}
EOF
)"
sed -i "s|^listen: .*|listen: [udp://127.0.0.1:$PORT, tcp://127.0.0.1:$PORT]|" "$IT_WORK/referee.yaml"
referee_start "$IT_WORK/referee.yaml" "$PORT"
stream_wait_tcp "$PORT" 10 || it_die "referee does not listen on tcp 127.0.0.1:$PORT"

# ---- calls over TCP, one connection and one per call ---------------------------------------
stream_sipp_uac_run calls_t1 "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" \
	-s 2551234 -t t1 -max_socket 100
sipp_uac_expect "tcp_one_connection_calls" "$CALLS"
stream_sipp_uac_run calls_tn "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" \
	-s 2551234 -t tn -max_socket 1000
sipp_uac_expect "tcp_connection_per_call_calls" "$CALLS"

tr -d '\r' <"$IT_WORK/uas/messages.log" >"$IT_WORK/uas/messages.txt"
n_inv=$(grep -c '^INVITE ' "$IT_WORK/uas/messages.txt")
n_two_rr=$(awk '/^INVITE /{inv = 1; tcp = 0; udp = 0} inv && /^Record-Route: <sip:127.0.0.1:'"$PORT"';lr;ra=/{udp = 1}
	inv && /^Record-Route: <sip:127.0.0.1:'"$PORT"';transport=tcp;lr;ra=/{tcp = 1}
	inv && /^$/{if (tcp && udp) n++; inv = 0} END {print n + 0}' "$IT_WORK/uas/messages.txt")
n_via=$(grep -c "^Via: SIP/2.0/UDP 127.0.0.1:$PORT;branch=z9hG4bK-rf-" "$IT_WORK/uas/messages.txt")
n_tcpvia=$(grep -cE '^Via: SIP/2.0/TCP 127.0.0.1:[0-9]+;branch=.*received=127.0.0.1;rport=[0-9]+' "$IT_WORK/uas/messages.txt")
if [ "$n_inv" -ge $((2 * CALLS)) ] && [ "$n_two_rr" -eq "$n_inv" ] && [ "$n_via" -ge "$n_inv" ] && [ "$n_tcpvia" -ge "$n_inv" ]; then
	it_check "tcp_to_udp_headers ($n_inv INVITEs: two signed Record-Routes, Via UDP, caller Via TCP with received/rport)"
else
	it_fail tcp_to_udp_headers "INVITEs $n_inv, with both Record-Routes $n_two_rr, our UDP Via $n_via, caller TCP Via with rport $n_tcpvia"
fi

# ---- UDP caller, TCP next hop (routes.local switched by SIGHUP) ---------------------------------
mkdir -p "$IT_WORK/tuas"
(cd "$IT_WORK/tuas" && exec timeout 200 sipp -sf "$IT_SIPP_DIR/uas.xml" -i 127.0.0.1 -p "$TCP_UAS_PORT" -t t1 \
	-max_socket 100 -nostdin -trace_msg -message_file "$IT_WORK/tuas/messages.log" </dev/null >out 2>err) &
IT_PIDS+=("$!")
stream_wait_tcp "$TCP_UAS_PORT" 10 || it_die "SIPp TCP UAS did not listen on $TCP_UAS_PORT"
sed -i "s|^  local: .*|  local: tcp://127.0.0.1:$TCP_UAS_PORT|" "$IT_WORK/referee.yaml"
kill -HUP "$REFEREE_PID"
for _ in $(seq 50); do grep -q 'configuration reloaded' "$IT_WORK/referee.err" && break; sleep 0.1; done
stream_sipp_uac_run calls_to_tcp "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect "udp_to_tcp_next_hop_calls" "$CALLS"
n_tcp_out=$(tr -d '\r' <"$IT_WORK/tuas/messages.log" | grep -c "^Via: SIP/2.0/TCP 127.0.0.1:$PORT;branch=z9hG4bK-rf-")
if [ "$n_tcp_out" -ge $((3 * CALLS)) ]; then
	it_check "tcp_next_hop_via ($n_tcp_out requests with Via SIP/2.0/TCP)"
else
	it_fail tcp_next_hop_via "$n_tcp_out requests with our TCP Via at the TCP UAS (want >= $((3 * CALLS)))"
fi
accepted=$(authit_metric "$MPORT" referee_connections_accepted_total 'transport="tcp"')
# t1: one connection; tn: one per call (CALLS)
if [ "$accepted" != NA ] && [ "$accepted" -ge $((CALLS + 1)) ]; then
	it_check "metric_connections_accepted ($accepted tcp)"
else
	it_fail metric_connections_accepted "got $accepted, want >= $((CALLS + 1))"
fi

# ---- a TCP next hop that refuses: the request is answered 503 upstream ----------------------------
DEAD_PORT=$(authit_free_tcp_port)
sed -i "s|^  local: .*|  local: tcp://127.0.0.1:$DEAD_PORT|" "$IT_WORK/referee.yaml"
kill -HUP "$REFEREE_PID"
for _ in $(seq 50); do [ "$(grep -c 'configuration reloaded' "$IT_WORK/referee.err")" -ge 2 ] && break; sleep 0.1; done
b_cf=$(authit_metric "$MPORT" referee_connect_failures_total 'transport="tcp"')
out=$(stream_py "$PORT" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.bind(("127.0.0.1", 0))
lp = s.getsockname()[1]
# a small request, then one of 6 KB (past a txn's inline buffer: its 503 is built in a big one)
for body in ("", "x" * 6000):
    s.sendto(("MESSAGE sip:2551234@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdead%d\r\n"
              "From: <sip:a@it.invalid>;tag=1\r\nTo: <sip:2551234@example.com>\r\nCall-ID: dead-hop-%d\r\n"
              "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: %d\r\n\r\n%s"
              % (lp, len(body), len(body), len(body), body)).encode(), ("127.0.0.1", int(sys.argv[1])))
    try:
        print(s.recv(4096).split(b"\r\n")[0].decode())
    except socket.timeout:
        print("no answer")
PY
)
d_cf=$(($(authit_metric "$MPORT" referee_connect_failures_total 'transport="tcp"') - b_cf))
if [ "$out" = "SIP/2.0 503 Next Hop Unreachable"$'\n'"SIP/2.0 503 Next Hop Unreachable" ] && [ "$d_cf" -ge 2 ]; then
	it_check "unreachable_tcp_next_hop_503_upstream (small and 6 KB requests: 503, connect failures +$d_cf)"
else
	it_fail unreachable_tcp_next_hop_503_upstream "got '$out', connect failures +$d_cf"
fi

# ---- raw clients ------------------------------------------------------------------------------
before_bad=$(authit_metric "$MPORT" referee_connections_closed_total 'reason="bad_framing"')
before_big=$(authit_metric "$MPORT" referee_connections_closed_total 'reason="too_big"')
before_slow=$(authit_metric "$MPORT" referee_connections_closed_total 'reason="read_timeout"')
before_ref=$(authit_metric "$MPORT" referee_connections_refused_total 'reason="max_per_source"')
out=$(stream_py "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])

def conn(src="127.0.0.1"):
    s = socket.socket()
    s.settimeout(6)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s

def closed(s):
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

s = conn()
s.sendall(b"\r\n\r\n")
print("ping", "ok" if s.recv(16) == b"\r\n" else "bad")
s.sendall(b"OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKnocl\r\n"
          b"From: <sip:a@it.invalid>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: nocl\r\nCSeq: 1 OPTIONS\r\n\r\n")
first = s.recv(4096)
print("nocl", "400" if first.startswith(b"SIP/2.0 400") else repr(first[:40]), "closed" if closed(s) else "open")
s = conn()
s.sendall(b"OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKbignocl\r\n"
          b"From: <sip:a@it.invalid>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: bignocl\r\nCSeq: 1 OPTIONS\r\n"
          + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 90) for i in range(60)) + b"\r\n")
first = s.recv(4096)
print("bignocl", "400" if first.startswith(b"SIP/2.0 400") else repr(first[:40]), "closed" if closed(s) else "open")
s = conn()
s.sendall(b"MESSAGE sip:x@example.com SIP/2.0\r\nContent-Length: 9000\r\n\r\n" + b"x" * 5000)
print("big", "closed" if closed(s) else "open")
s = conn()
t0 = time.time()
s.sendall(b"MESSAGE sip:x@example.com SIP/2.0\r\nCall-ID: slow\r\n")
print("slow", "closed" if closed(s) else "open", "%.0f" % (time.time() - t0))
keep = []
refused = 0
for i in range(8):
    c = conn("127.0.0.77")
    c.settimeout(0.5)
    try:
        if c.recv(1) == b"":
            refused += 1
            continue
    except socket.timeout:
        pass
    except ConnectionResetError:
        refused += 1
        continue
    keep.append(c)
print("per_source", len(keep), refused)
PY
)
echo "$out"
grep -q '^ping ok$' <<<"$out" && it_check "keepalive_crlf_pong" || it_fail keepalive_crlf_pong "$out"
grep -q '^nocl 400 closed$' <<<"$out" && it_check "no_content_length_400_and_close" || it_fail no_content_length_400_and_close "$out"
grep -q '^bignocl 400 closed$' <<<"$out" && it_check "no_content_length_6k_headers_400_and_close" ||
	it_fail no_content_length_6k_headers_400_and_close "$out"
grep -q '^big closed$' <<<"$out" && it_check "oversize_closed" || it_fail oversize_closed "$out"
grep -qE '^slow closed [2-5]$' <<<"$out" && it_check "slow_sender_cut_after_read_timeout" || it_fail slow_sender_cut_after_read_timeout "$out"
grep -q '^per_source 5 3$' <<<"$out" && it_check "max_per_source_refused" || it_fail max_per_source_refused "$out"
sleep 1
for m in 'closed_total reason="bad_framing" 2' 'closed_total reason="too_big" 1' 'closed_total reason="read_timeout" 1' 'refused_total reason="max_per_source" 3'; do
	read -r fam label want <<<"$m"
	case $label in
	*bad_framing*) b=$before_bad ;; *too_big*) b=$before_big ;; *read_timeout*) b=$before_slow ;; *) b=$before_ref ;;
	esac
	got=$(authit_metric "$MPORT" "referee_connections_$fam" "$label")
	if [ "$got" != NA ] && [ "$((got - b))" -eq "$want" ]; then
		it_check "metric_${fam}_${label} (+$want)"
	else
		it_fail "metric_${fam}_${label}" "before $b, now $got, want +$want"
	fi
done
open_now=$(authit_metric "$MPORT" referee_connections_open 'transport="tcp"')
[ "$open_now" != NA ] && [ "$open_now" -ge 1 ] && it_check "metric_connections_open ($open_now tcp)" ||
	it_fail metric_connections_open "got $open_now"

referee_stop_check 10
it_finish

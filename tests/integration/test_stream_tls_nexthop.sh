#!/usr/bin/env bash
# test_stream_tls_nexthop.sh - a TLS next hop verified by name (SPEC §9, §10; RFC 5922), no DNS:
# routes.local names the host and maddr=127.0.0.1 gives the address. The next hops are a
# python3 ssl UAS (INVITE -> 100, 200; BYE, MESSAGE -> 200) on three ports, each with its own
# certificate (made by openssl at run time):
#   good   SAN DNS:pbx.example.test only (no IP), signed by the CA of tls.ca_file;
#   wrong  SAN DNS:other.example.test, same CA;
#   rogue  SAN DNS:pbx.example.test, signed by another CA.
# Checks:
#   (a) routes.local "sips:pbx.example.test:PORT;maddr=127.0.0.1": SIPp calls over UDP are
#       relayed over TLS and complete; the UAS sees SNI pbx.example.test and our Via
#       SIP/2.0/TLS; the in-dialog ACK/BYE (Request-URI: the UAS's Contact, an IP) reuse the
#       connection verified by name;
#   (b) SIGHUP to "sip:pbx.example.test:PORT;transport=tls;maddr=127.0.0.1" toward wrong:
#       the handshake is refused by referee (SNI pbx.example.test was sent), no request reaches
#       the UAS, a MESSAGE gets 503 upstream; connect failures (tls) and handshake failures
#       (bad_certificate) +1 each;
#   (c) the same toward rogue (right name, other CA): likewise;
#   SIGTERM: exit 0, no sanitizer report.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"

CALLS=${CALLS:-20}
RATE=${RATE:-10}
it_need sipp python3 ss timeout openssl
PORT=$(it_free_udp_port)
MPORT=$(authit_free_tcp_port)
P_GOOD=$(authit_free_tcp_port)
P_WRONG=$(authit_free_tcp_port)
P_ROGUE=$(authit_free_tcp_port)
C=$IT_WORK/certs
stream_certs "$C"
stream_cert "$C" good ca DNS:pbx.example.test || it_die "openssl: good"
stream_cert "$C" wrong ca DNS:other.example.test || it_die "openssl: wrong"
stream_cert "$C" rogue other-ca DNS:pbx.example.test || it_die "openssl: rogue"

# ---- the TLS UAS: one listener per certificate, a log line per SNI, handshake and request ----
cat >"$IT_WORK/tls_uas.py" <<'PY'
import socket, ssl, sys, threading
certs, logf = sys.argv[1], sys.argv[2]
out = open(logf, "a", buffering=1)
lock = threading.Lock()

def say(*words):
    with lock:
        out.write(" ".join(str(w) for w in words) + "\n")

def answer(name, port, t, head):
    lines = head.decode("utf-8", "replace").split("\r\n")
    if lines[0].startswith("SIP/2.0"):
        return
    method = lines[0].split(" ")[0]
    hdrs = [(l.split(":", 1)[0].strip().lower(), l) for l in lines[1:] if ":" in l]
    vias = [l for k, l in hdrs if k in ("via", "v")]
    say("request", name, method, vias[0] if vias else "no-via")
    if method == "ACK":
        return
    keep = [l for k, l in hdrs if k in ("via", "v", "from", "f", "call-id", "i", "cseq")]
    to = [l for k, l in hdrs if k in ("to", "t")][0]
    if ";tag=" not in to:
        to += ";tag=tlsuas"
    rr = [l for k, l in hdrs if k == "record-route"]

    def send(code, extra):
        t.sendall(("\r\n".join(["SIP/2.0 " + code] + keep + [to] + extra + ["Content-Length: 0", "", ""])).encode())

    if method == "INVITE":
        send("100 Trying", [])
        send("200 OK", rr + ["Contact: <sip:pbx@127.0.0.1:%d;transport=tls>" % port])
    else:
        send("200 OK", [])

def serve_conn(name, port, ctx, s):
    try:
        t = ctx.wrap_socket(s, server_side=True)
    except (ssl.SSLError, OSError) as e:
        say("handshake_failed", name, type(e).__name__, getattr(e, "reason", ""))
        s.close()
        return
    say("handshake", name, t.version())
    buf = b""
    while True:
        try:
            d = t.recv(65536)
        except (ssl.SSLError, OSError):
            break
        if not d:
            break
        buf += d
        while True:
            buf = buf.lstrip(b"\r\n")
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                break
            cl = 0
            for l in head.split(b"\r\n")[1:]:
                k, _, v = l.partition(b":")
                if k.strip().lower() in (b"content-length", b"l"):
                    cl = int(v)
            if len(rest) < cl:
                break
            buf = rest[cl:]
            answer(name, port, t, head)
    t.close()

def listen(name, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("%s/%s.pem" % (certs, name), "%s/%s.key" % (certs, name))
    ctx.sni_callback = lambda sslobj, server_name, c: say("sni", name, server_name)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve_conn, args=(name, port, ctx, s), daemon=True).start()

for spec in sys.argv[3:]:
    name, port = spec.split(":")
    threading.Thread(target=listen, args=(name, int(port)), daemon=True).start()
threading.Event().wait()
PY
it_spawn tls_uas timeout 300 python3 "$IT_WORK/tls_uas.py" "$C" "$IT_WORK/tls_uas.log" \
	"good:$P_GOOD" "wrong:$P_WRONG" "rogue:$P_ROGUE"
for p in "$P_GOOD" "$P_WRONG" "$P_ROGUE"; do
	stream_wait_tcp "$p" 10 || it_die "the TLS UAS does not listen on $p ($(cat "$IT_WORK/tls_uas.err"))"
done

referee_config "$IT_WORK/referee.yaml" "$PORT" 9 "$(cat <<EOF
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: []}
metrics: {listen: 127.0.0.1:$MPORT}
tls: {ca_file: $C/ca.pem}
EOF
)"
route() { # URI: routes.local, then SIGHUP when referee runs
	sed -i "s|^  local: .*|  local: \"$1\"|" "$IT_WORK/referee.yaml"
	[ -n "${REFEREE_PID:-}" ] || return 0
	local n
	n=$(grep -c 'configuration reloaded' "$IT_WORK/referee.err")
	kill -HUP "$REFEREE_PID"
	for _ in $(seq 50); do [ "$(grep -c 'configuration reloaded' "$IT_WORK/referee.err")" -gt "$n" ] && return 0; sleep 0.1; done
	it_die "no reload after SIGHUP for routes.local $1"
}
route "sips:pbx.example.test:$P_GOOD;maddr=127.0.0.1"
referee_start "$IT_WORK/referee.yaml" "$PORT"
metric() { authit_metric "$MPORT" "$@"; }
uaslog() { grep -c "$1" "$IT_WORK/tls_uas.log" 2>/dev/null; }

# ---- (a) calls relayed over TLS to the name-verified next hop ---------------------------------
sipp_uac_run calls "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect "udp_calls_over_tls_next_hop" "$CALLS"
n_sni=$(uaslog '^sni good pbx.example.test$')
n_hs=$(uaslog '^handshake good ')
n_inv=$(uaslog "^request good INVITE Via: SIP/2.0/TLS 127.0.0.1:$PORT;branch=z9hG4bK")
n_bye=$(uaslog "^request good BYE Via: SIP/2.0/TLS 127.0.0.1:$PORT;branch=z9hG4bK")
if [ "$n_sni" -ge 1 ] && [ "$n_sni" -eq "$n_hs" ] && [ "$n_inv" -ge "$CALLS" ] && [ "$n_bye" -ge "$CALLS" ]; then
	it_check "tls_next_hop_sni_and_via (SNI pbx.example.test on $n_sni handshakes, $n_inv INVITEs and $n_bye BYEs with Via TLS)"
else
	it_fail tls_next_hop_sni_and_via "SNI $n_sni, handshakes $n_hs, INVITEs $n_inv, BYEs $n_bye (see $IT_WORK/tls_uas.log)"
fi
# the ACK and BYE go to the Contact's IP: the connection verified by name is reused
[ "$n_hs" -eq 1 ] && it_check "tls_next_hop_one_connection (in-dialog requests reuse it)" ||
	it_fail tls_next_hop_one_connection "$n_hs handshakes for $CALLS calls"

# ---- (b), (c) a next hop that does not prove the name: 503 upstream, counted ------------------
# MESSAGE over UDP: prints the status line referee answers (or "no answer")
message() {
	stream_py "$PORT" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(8)
s.bind(("127.0.0.1", 0))
lp = s.getsockname()[1]
s.sendto(("MESSAGE sip:2551234@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
          "From: <sip:a@it.invalid>;tag=1\r\nTo: <sip:2551234@example.com>\r\nCall-ID: nexthop-%s\r\n"
          "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
          % (lp, sys.argv[2], sys.argv[2])).encode(), ("127.0.0.1", int(sys.argv[1])))
try:
    while True:
        line = s.recv(4096).split(b"\r\n")[0].decode()
        if not line.startswith("SIP/2.0 1"):
            break
    print(line)
except socket.timeout:
    print("no answer")
PY
}
refused_hop() { # CHECK NAME URI: NAME's certificate must not pass for pbx.example.test
	local check=$1 name=$2 uri=$3 b_cf b_bad got d_cf d_bad sni req
	route "$uri"
	b_cf=$(metric referee_connect_failures_total 'transport="tls"')
	b_bad=$(metric referee_tls_handshake_failures_total 'reason="bad_certificate"')
	got=$(message "$name")
	sleep 0.5
	d_cf=$(($(metric referee_connect_failures_total 'transport="tls"') - b_cf))
	d_bad=$(($(metric referee_tls_handshake_failures_total 'reason="bad_certificate"') - b_bad))
	sni=$(uaslog "^sni $name pbx.example.test$")
	req=$(uaslog "^request $name ")
	if [ "$got" = "SIP/2.0 503 Next Hop Unreachable" ] && [ "$d_cf" -eq 1 ] && [ "$d_bad" -eq 1 ] &&
		[ "$sni" -ge 1 ] && [ "$req" -eq 0 ]; then
		it_check "$check ($got; connect failures tls +1, handshake failures bad_certificate +1; SNI sent, nothing delivered)"
	else
		it_fail "$check" "got '$got', connect failures +$d_cf, bad_certificate +$d_bad, SNI seen $sni, requests delivered $req"
	fi
}
refused_hop tls_next_hop_wrong_name_503 wrong "sip:pbx.example.test:$P_WRONG;transport=tls;maddr=127.0.0.1"
refused_hop tls_next_hop_other_ca_503 rogue "sips:pbx.example.test:$P_ROGUE;maddr=127.0.0.1"
grep -q 'tls: next hop handshake failed peer=127.0.0.1 port='"$P_WRONG"' verify=' "$IT_WORK/referee.err" &&
	it_check "tls_next_hop_failure_logged" || it_fail tls_next_hop_failure_logged "$(grep -m3 'tls' "$IT_WORK/referee.err")"

referee_stop_check 10
it_finish

#!/usr/bin/env bash
# test_stream_tls.sh - SIP over TLS through referee (SPEC §9) with certificates made by openssl
# at run time (ECDSA P-256):
#   - SIPp calls over TLS through stunnel (client mode, SIPp has no TLS): with the client
#     certificate client.test (in tls.trusted_names) calls to 3xxxxxx, which need LocalDialing,
#     pass unchallenged (a trusted source); through a tunnel without a client certificate the
#     same INVITE gets 407 (verify_client optional);
#   - openssl s_client: verified handshake (name proxy.test) with the client certificate;
#   - Python ssl clients: TLS 1.1 refused; a client certificate from another CA and an expired
#     one fail (bad_certificate); plain bytes on the TLS port (protocol); a slow sender is cut
#     off after tcp.read_timeout; each counted;
#   - certificate reload under load: a connection keeps getting 200 to OPTIONS every 50 ms while
#     the certificate is replaced and SIGHUP is sent twice; new connections see the new
#     certificate; no connection is closed meanwhile;
#   - SIGHUP to verify_client require: a client without certificate fails (no_certificate);
#   - SIGTERM: exit 0, no sanitizer report.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"

CALLS=${CALLS:-50}
RATE=${RATE:-25}
it_need sipp python3 ss timeout openssl stunnel
PORT=$(stream_free_port)
TPORT=$(authit_free_tcp_port)
UAS_PORT=$(it_free_udp_port)
MPORT=$(authit_free_tcp_port)
SA=$(authit_free_tcp_port)
SB=$(authit_free_tcp_port)
C=$IT_WORK/certs
stream_certs "$C"

sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" 300

referee_config "$IT_WORK/referee.yaml" "$PORT" "$UAS_PORT" "$(cat <<EOF
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
metrics: {listen: 127.0.0.1:$MPORT}
tcp: {read_timeout: 2}
tls:
  certificate: $C/server.pem
  private_key: $C/server.key
  ca_file: $C/ca.pem
  verify_client: optional
  trusted_names: [client.test]
EOF
)"
sed -i "s|^listen: .*|listen: [udp://127.0.0.1:$PORT, tls://127.0.0.1:$TPORT]|" "$IT_WORK/referee.yaml"
referee_start "$IT_WORK/referee.yaml" "$PORT"
stream_wait_tcp "$TPORT" 10 || it_die "referee does not listen on tls 127.0.0.1:$TPORT"
metric() { authit_metric "$MPORT" "$@"; }

# a private key others may read is refused by --check (like the secret)
cp "$C/server.key" "$IT_WORK/open.key" && chmod 644 "$IT_WORK/open.key"
sed "s|private_key: .*|private_key: $IT_WORK/open.key|" "$IT_WORK/referee.yaml" >"$IT_WORK/open.yaml"
if out=$("$REFEREE_BIN" -c "$IT_WORK/open.yaml" --check 2>&1); then
	it_fail private_key_mode_refused "--check accepted a 0644 key"
elif grep -q 'open.yaml:[0-9]*: tls.private_key: .*accessible by group or others' <<<"$out"; then
	it_check "private_key_mode_refused ($out)"
else
	it_fail private_key_mode_refused "$out"
fi

# ---- SIPp through stunnel -------------------------------------------------------------------
tunnel() { # NAME ACCEPT_PORT [cert]
	cat >"$IT_WORK/$1.conf" <<EOF
foreground = yes
pid =
output = $IT_WORK/$1.log
[sip]
client = yes
accept = 127.0.0.1:$2
connect = 127.0.0.1:$TPORT
CAfile = $C/ca.pem
verifyChain = yes
checkHost = proxy.test
sni = proxy.test
EOF
	[ "${3:-}" = cert ] && printf 'cert = %s\nkey = %s\n' "$C/client.pem" "$C/client.key" >>"$IT_WORK/$1.conf"
	it_spawn "$1" stunnel "$IT_WORK/$1.conf"
	stream_wait_tcp "$2" 10 || it_die "stunnel $1 did not listen on $2"
}
tunnel tls_trusted "$SA" cert
tunnel tls_anon "$SB"
stream_sipp_uac_run tls_calls "$CALLS" "$RATE" $((CALLS / RATE + 60)) "$SA" "$IT_SIPP_DIR/uac_call.xml" \
	-s 3001234 -t t1 -max_socket 100
sipp_uac_expect "tls_calls_trusted_client_name" "$CALLS"
stream_sipp_uac_run tls_anon 3 3 30 "$SB" "$IT_SIPP_DIR/uac_invite_407.xml" -s 3001234 -t t1 -max_socket 100
sipp_uac_expect "tls_anonymous_client_challenged_407" 3

# ---- openssl s_client -----------------------------------------------------------------------
sc=$(printf 'OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKsc\r\nFrom: <sip:a@it.invalid>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: sclient\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' |
	timeout 10 openssl s_client -connect "127.0.0.1:$TPORT" -servername proxy.test -verify_hostname proxy.test \
		-CAfile "$C/ca.pem" -cert "$C/client.pem" -key "$C/client.key" -verify_return_error -brief -ign_eof 2>&1 &
	sleep 2; kill %1 2>/dev/null; wait 2>/dev/null)
if grep -q 'Verification: OK' <<<"$sc" && grep -q 'SIP/2.0 200' <<<"$sc"; then
	it_check "openssl_s_client_verified_handshake_and_200 ($(grep -m1 'Protocol version' <<<"$sc"))"
else
	it_fail openssl_s_client_verified_handshake_and_200 "$(head -c 600 <<<"$sc")"
fi

# ---- Python ssl clients: bad certificates, garbage, slow sender --------------------------------
b_bad=$(metric referee_tls_handshake_failures_total 'reason="bad_certificate"')
b_proto=$(metric referee_tls_handshake_failures_total 'reason="protocol"')
b_slow=$(metric referee_connections_closed_total 'reason="read_timeout"')
out=$(stream_py "$TPORT" "$C" <<'PY'
import socket, ssl, sys, time
port, certs = int(sys.argv[1]), sys.argv[2]

def ctx(cert=None, maxv=None):
    c = ssl.create_default_context(cafile=certs + "/ca.pem")
    if cert:
        c.load_cert_chain(certs + "/" + cert + ".pem", certs + "/" + cert + ".key")
    if maxv:
        c.minimum_version = ssl.TLSVersion.TLSv1
        c.maximum_version = maxv
        c.set_ciphers("ALL:@SECLEVEL=0")
    return c

def attempt(name, cert=None, maxv=None, pad=0):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        t = ctx(cert, maxv).wrap_socket(s, server_hostname="proxy.test")
        # TLS 1.3: a refused client certificate shows on the first read
        t.sendall(b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKpy\r\n"
                  b"From: <sip:a@it.invalid>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: py-" + name.encode() +
                  b"\r\nCSeq: 1 OPTIONS\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(pad)) +
                  b"Content-Length: 0\r\n\r\n")
        d = t.recv(100)
        print(name, "answered" if d.startswith(b"SIP/2.0 200") else "closed")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError) as e:
        print(name, "refused", type(e).__name__)
    finally:
        s.close()

attempt("good", "client")
# 30 KB of headers under the default tcp.max_message (65535, SPEC §9): answered, not closed
attempt("big30k", "client", pad=30)
attempt("nocert")
attempt("rogue_ca", "rogue")
attempt("expired", "expired")
attempt("tls11", "client", ssl.TLSVersion.TLSv1_1)
g = socket.create_connection(("127.0.0.1", port), timeout=5)
g.sendall(b"OPTIONS sip:example.com SIP/2.0\r\n\r\n" + b"\x00garbage" * 50)
try:
    print("garbage", "closed" if g.recv(100) == b"" else "data")
except (ConnectionResetError, socket.timeout) as e:
    print("garbage", "closed" if isinstance(e, ConnectionResetError) else "open")
s = socket.create_connection(("127.0.0.1", port), timeout=6)
t = ctx("client").wrap_socket(s, server_hostname="proxy.test")
t0 = time.time()
t.sendall(b"MESSAGE sip:x@example.com SIP/2.0\r\nCall-ID: slow\r\n")
try:
    d = t.recv(100)
    print("slow", "closed" if not d else "data", "%.0f" % (time.time() - t0))
except (ssl.SSLError, ConnectionResetError):
    print("slow", "closed", "%.0f" % (time.time() - t0))
except socket.timeout:
    print("slow", "open")
PY
)
echo "$out"
for want in 'good answered' 'big30k answered' 'nocert answered' 'rogue_ca refused' 'expired refused' 'tls11 refused' 'garbage closed'; do
	grep -q "^$want" <<<"$out" && it_check "tls_client_${want// /_}" || it_fail "tls_client_${want// /_}" "$out"
done
grep -qE '^slow closed [2-5]$' <<<"$out" && it_check "tls_slow_sender_cut_after_read_timeout" || it_fail tls_slow_sender_cut_after_read_timeout "$out"
sleep 1
d_bad=$(($(metric referee_tls_handshake_failures_total 'reason="bad_certificate"') - b_bad))
d_proto=$(($(metric referee_tls_handshake_failures_total 'reason="protocol"') - b_proto))
d_slow=$(($(metric referee_connections_closed_total 'reason="read_timeout"') - b_slow))
[ "$d_bad" -eq 2 ] && it_check "metric_tls_bad_certificate (+2)" || it_fail metric_tls_bad_certificate "+$d_bad, want +2"
[ "$d_proto" -ge 2 ] && it_check "metric_tls_protocol (+$d_proto: TLS 1.1 and garbage)" || it_fail metric_tls_protocol "+$d_proto, want >= 2"
[ "$d_slow" -eq 1 ] && it_check "metric_tls_read_timeout (+1)" || it_fail metric_tls_read_timeout "+$d_slow, want +1"

# ---- certificate reload under load -----------------------------------------------------------
b_closed=$(metric referee_connections_closed_total)
old_serial=$(openssl x509 -in "$C/server.pem" -noout -serial)
stream_py "$TPORT" "$C" >"$IT_WORK/reload_load.out" 2>&1 <<'PY' &
import socket, ssl, sys, time
port, certs = int(sys.argv[1]), sys.argv[2]
c = ssl.create_default_context(cafile=certs + "/ca.pem")
c.load_cert_chain(certs + "/client.pem", certs + "/client.key")
t = c.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="proxy.test")
ok = 0
buf = b""
for i in range(120):
    t.sendall(b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKrl%d\r\n"
              b"From: <sip:a@it.invalid>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: reload-%d\r\n"
              b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n" % (i, i))
    while b"\r\n\r\n" not in buf:
        buf += t.recv(4096)
    head, _, buf = buf.partition(b"\r\n\r\n")
    ok += head.startswith(b"SIP/2.0 200")
    time.sleep(0.05)
print("answered", ok)
PY
LOADER=$!
sleep 1
for round in 1 2; do
	(cd "$C" && umask 077 && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=proxy.test \
		-keyout new.key -out new.csr 2>/dev/null && openssl x509 -req -in new.csr -CA ca.pem -CAkey ca.key \
		-CAcreateserial -days 2 -extfile server.ext -out new.pem 2>/dev/null && mv new.key server.key && mv new.pem server.pem)
	kill -HUP "$REFEREE_PID"
	sleep 1.5
done
wait "$LOADER"
grep -q '^answered 120$' "$IT_WORK/reload_load.out" && it_check "reload_under_load_no_drop (120 of 120 answered on one connection)" ||
	it_fail reload_under_load_no_drop "$(cat "$IT_WORK/reload_load.out")"
n_reload=$(grep -c 'tls: certificate and key reloaded' "$IT_WORK/referee.err")
new_serial=$(timeout 10 openssl s_client -connect "127.0.0.1:$TPORT" -servername proxy.test </dev/null 2>/dev/null | openssl x509 -noout -serial)
if [ "$n_reload" -ge 2 ] && [ "$new_serial" = "$(openssl x509 -in "$C/server.pem" -noout -serial)" ] && [ "$new_serial" != "$old_serial" ]; then
	it_check "reload_new_connections_get_new_certificate ($n_reload reloads, $new_serial)"
else
	it_fail reload_new_connections_get_new_certificate "reloads $n_reload, served $new_serial, file $(openssl x509 -in "$C/server.pem" -noout -serial), old $old_serial"
fi
d_closed=$(($(metric referee_connections_closed_total) - b_closed))
# the s_client connection just above may be closed by now: at most that one
[ "$d_closed" -le 2 ] && it_check "reload_closed_no_connection (closed +$d_closed: the loader and s_client ending)" ||
	it_fail reload_closed_no_connection "closed +$d_closed"

# ---- verify_client require --------------------------------------------------------------------
sed -i 's|verify_client: optional|verify_client: require|' "$IT_WORK/referee.yaml"
kill -HUP "$REFEREE_PID"
sleep 1.5
b_nocert=$(metric referee_tls_handshake_failures_total 'reason="no_certificate"')
out=$(stream_py "$TPORT" "$C" <<'PY'
import socket, ssl, sys
port, certs = int(sys.argv[1]), sys.argv[2]
for name, cert in (("nocert", None), ("cert", "client")):
    c = ssl.create_default_context(cafile=certs + "/ca.pem")
    if cert:
        c.load_cert_chain(certs + "/client.pem", certs + "/client.key")
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        t = c.wrap_socket(s, server_hostname="proxy.test")
        t.sendall(b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKrq\r\n"
                  b"From: <sip:a@it.invalid>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: req\r\n"
                  b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        print(name, "answered" if t.recv(100).startswith(b"SIP/2.0 200") else "closed")
    except (ssl.SSLError, ConnectionResetError, OSError) as e:
        print(name, "refused")
PY
)
echo "$out"
grep -q '^nocert refused' <<<"$out" && grep -q '^cert answered' <<<"$out" && it_check "verify_client_require" || it_fail verify_client_require "$out"
sleep 0.5
d_nocert=$(($(metric referee_tls_handshake_failures_total 'reason="no_certificate"') - b_nocert))
[ "$d_nocert" -eq 1 ] && it_check "metric_tls_no_certificate (+1)" || it_fail metric_tls_no_certificate "+$d_nocert"

referee_stop_check 10
it_finish

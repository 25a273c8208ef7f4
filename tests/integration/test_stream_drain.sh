#!/usr/bin/env bash
# test_stream_drain.sh - SIGTERM drain over TCP (SPEC §7 "SIGTERM drains and exits 0", §9):
# a response produced during the drain still reaches its TCP client.
#   referee with a receiver thread apart from its worker (threads.inline_receive false: every
#   response to a TCP client crosses the receiver's queue), the Redis store, tcp:// listen.
#   A raw TCP client (python3) gets a 407, then answers it for an uncached user while
#   redis-server is stopped (SIGSTOP): the request is parked on the store lookup. SIGTERM
#   to referee (its receiver stops and is joined), then SIGCONT to Redis: the worker finishes
#   the request in the drain and its answer must arrive before the connection closes;
#   referee exits 0, no sanitizer report.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"

it_need redis-server redis-cli python3 ss timeout ps
W=$IT_WORK
authit_redis_start redis
referee_secret "$W/secret"
PORT=$(stream_free_port)
cat >"$W/referee.yaml" <<EOF
listen: [udp://127.0.0.1:$PORT, tcp://127.0.0.1:$PORT]
domains: [example.com]
realm: example.com
secret_file: $W/secret
threads: {receivers: 1, workers: 1, inline_receive: false}
routes:
  local: udp://127.0.0.1:9
health: {interval: 0}
store:
  backend: redis
  redis: redis://127.0.0.1:$AUTHIT_RPORT
rules:
  - {hosts: [example.com], users: ["[2-9]xxxxxx"], permissions: [LocalDialing]}
EOF
authit_referee_start referee "$W/referee.yaml" "$PORT"
REF_PID=$AUTHIT_PID
stream_wait_tcp "$PORT" 10 || it_die "referee does not listen on tcp 127.0.0.1:$PORT"

out=$(stream_py "$PORT" "$REF_PID" "$AUTHIT_REDIS_PID" <<'PY'
import hashlib, os, re, select, signal, socket, sys, time
port, ref_pid, redis_pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
lp = s.getsockname()[1]
buf = b""

def invite(cseq, auth):
    s.sendall(("INVITE sip:2551234@example.com SIP/2.0\r\n"
               "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKdrain%d\r\nMax-Forwards: 70\r\n"
               "From: <sip:1001@example.com>;tag=d1\r\nTo: <sip:2551234@example.com>\r\n"
               "Call-ID: drain-1\r\nCSeq: %d INVITE\r\nContact: <sip:1001@127.0.0.1:%d;transport=tcp>\r\n"
               "%sContent-Length: 0\r\n\r\n" % (lp, cseq, cseq, lp,
                                               "Proxy-Authorization: %s\r\n" % auth if auth else "")).encode())

def final(wait):
    """the next final response's head, "eof" (closed first) or "timeout" """
    global buf
    end = time.monotonic() + wait
    while True:
        while b"\r\n\r\n" in buf:
            head, _, buf = buf.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
            buf = buf[int(m.group(1)) if m else 0:]
            if not re.match(rb"SIP/2.0 1", head):
                return head.decode(errors="replace")
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return "timeout"
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            return "eof"
        buf += d

invite(1, None)
r = final(5)
print("challenge", r.split("\r\n")[0])
ch = re.search(r'(?im)^Proxy-Authenticate:\s*Digest\s+(.*)$', r)
if not ch:
    sys.exit(0)
p = {k: v for k, v in re.findall(r'(\w+)="?([^",]*)"?', ch.group(1))}
md5 = lambda x: hashlib.md5(x.encode()).hexdigest()
uri = "sip:2551234@example.com"
ha1, ha2 = md5("1001:%s:wrong" % p["realm"]), md5("INVITE:" + uri)
resp = md5("%s:%s:00000001:c0ffee:auth:%s" % (ha1, p["nonce"], ha2))
os.kill(redis_pid, signal.SIGSTOP)
invite(2, 'Digest username="1001", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, '
          'qop=auth, nc=00000001, cnonce="c0ffee"' % (p["realm"], p["nonce"], uri, resp))
print("before_sigterm", final(0.5).split("\r\n")[0])
os.kill(ref_pid, signal.SIGTERM)
time.sleep(0.3)
os.kill(redis_pid, signal.SIGCONT)
print("after_sigterm", final(5).split("\r\n")[0])
PY
)
echo "$out"
grep -q '^challenge SIP/2.0 407' <<<"$out" && it_check "first INVITE challenged (407)" ||
	it_fail "first INVITE challenged (407)" "$out"
grep -q '^before_sigterm timeout$' <<<"$out" && it_check "answer parked on the stopped store until SIGTERM" ||
	it_fail "answer parked on the stopped store until SIGTERM" "$out"
grep -qE '^after_sigterm SIP/2.0 [3-6][0-9][0-9] ' <<<"$out" &&
	it_check "the answer finished in the drain reached the TCP client ($(grep '^after_sigterm' <<<"$out"))" ||
	it_fail "the answer finished in the drain reached the TCP client" "$out"
# referee got its SIGTERM from the client: reap it, no second signal (once the pipeline has
# stopped, one would find the default action again); KILLed after 10 s. Gone or a zombie
# both mean exited (bash may have reaped it already: `wait` still knows its status).
exited() { case $(ps -o stat= -p "$REF_PID" 2>/dev/null) in Z* | '') return 0 ;; esac; return 1; }
for _ in $(seq 100); do exited && break; sleep 0.1; done
exited || kill -KILL "$REF_PID"
wait "$REF_PID"
rc=$?
[ "$rc" -eq 0 ] && it_check "referee_sigterm_exit0" || it_fail referee_sigterm_exit0 "exit status $rc (137: killed)"
it_sanitizer_clean "$W/referee.err" && it_check referee_no_sanitizer_report ||
	it_fail referee_no_sanitizer_report "see $W/referee.err"
it_finish

#!/usr/bin/env bash
# test_malformed.sh - referee survives hostile datagrams (SPEC §1 "Malformed -> 400 when a
# response can be routed, otherwise a counted drop"; RFC 3261 §18.3 Content-Length on UDP).
# A python3 client on 127.0.0.1 sends, between two OPTIONS pings that must both get 200:
# truncated messages, binary garbage (fixed seed, bounded count), a 64 KiB header (one UDP
# datagram of ~65000 bytes), bad Content-Length values, NULs, lone LFs, responses that are not
# ours. Then malformed INVITEs whose Via is routable (back to the client) must get 400.
# Finally referee must still be alive, exit 0 on SIGTERM and leave no sanitizer report.
# Nothing here needs a next hop to answer: routes.local points at a port nobody listens on.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

it_need python3 ss timeout
PORT=$(it_free_udp_port)
DEAD_PORT=$(it_free_udp_port)
referee_config "$IT_WORK/referee.yaml" "$PORT" "$DEAD_PORT"
proxy_start "$IT_WORK/referee.yaml" "$PORT" "$DEAD_PORT"

cat >"$IT_WORK/malformed.py" <<'PYEOF'
# malformed.py PORT - sends hostile datagrams to referee on 127.0.0.1:PORT, prints PASS/FAIL
# lines. Bounded: a fixed number of datagrams, 2 s per awaited answer.
import os, random, socket, sys, time

port = int(sys.argv[1])
dst = ("127.0.0.1", port)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
me = s.getsockname()[1]
fails = 0
seq = 0

def result(ok, name, detail=""):
    global fails
    if not ok:
        fails += 1
    print(("PASS  " if ok else "FAIL  ") + name + (": " + detail if detail else ""), flush=True)

def ids():
    global seq
    seq += 1
    return "z9hG4bK-mal-%d-%d" % (os.getpid(), seq), "mal-%d-%d@it.invalid" % (os.getpid(), seq)

def msg(start, branch, callid, method, extra="", body="", clen=None, via=None):
    via = via if via is not None else "SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (me, branch)
    clen = len(body.encode()) if clen is None else clen
    return ("%s\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: <sip:probe@it.invalid>;tag=mal%d\r\n"
            "To: <sip:2551234@example.com>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n%s"
            "Content-Length: %s\r\n\r\n%s" % (start, via, seq, callid, method, extra, clen, body)).encode()

def drain():
    s.setblocking(False)
    try:
        while True:
            s.recv(70000)
    except BlockingIOError:
        pass
    s.setblocking(True)

def await_reply(callid, timeout=2.0):
    """First status line of a reply carrying our Call-ID, or None after timeout."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data = s.recv(70000)
        except socket.timeout:
            return None
        if callid.encode() in data:
            return data.split(b"\r\n", 1)[0].decode("latin-1")

def options_ping(name):
    branch, callid = ids()
    s.sendto(msg("OPTIONS sip:example.com SIP/2.0", branch, callid, "OPTIONS"), dst)
    line = await_reply(callid)
    result(line is not None and line.startswith("SIP/2.0 200"), name, repr(line))

options_ping("options_200_before")

# ---- hostile datagrams: no particular answer required, only survival ------------------
hostile = []
b, c = ids()
full = msg("INVITE sip:2551234@example.com SIP/2.0", b, c, "INVITE", body="v=0\r\n")
for cut in (1, 7, 20, 45, 80, len(full) // 2, len(full) - 10, len(full) - 3):
    hostile.append(full[:cut])                                   # truncated at many places
hostile.append(b"OPTIONS sip:example.com SIP/2.0\r\n")           # request line only
hostile.append(b"SIP/2.0 200")                                   # truncated status line
hostile.append(b"\r\n\r\n")                                      # keep-alive (RFC 5626)
hostile.append(b"\x00" * 64)
hostile.append(b"\xff" * 1500)
hostile.append(full.replace(b"\r\n", b"\n"))                     # lone LFs
hostile.append(full.replace(b"Call-ID", b"Call\x00ID"))          # NUL in a header name
hostile.append(full.replace(b"SIP/2.0\r\n", b"SIP/2.0 \x00\r\n", 1))
hostile.append(b"INVITE  SIP/2.0\r\n\r\n")                       # empty Request-URI
hostile.append(b"INVITE sip: SIP/2.0\r\nVia: \r\n\r\n")
hostile.append(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnotours\r\n"
               b"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")  # not our Via
hostile.append(b"SIP/2.0 200 OK\r\n\r\n")                        # response without Via
for clen in ("-1", "abc", "99999999999999999999999", "4294967296", "1e3", " ", "0x10"):
    b, c = ids()
    hostile.append(msg("OPTIONS sip:example.com SIP/2.0", b, c, "OPTIONS", clen=clen))
b, c = ids()
hostile.append(msg("OPTIONS sip:example.com SIP/2.0", b, c, "OPTIONS",
                   extra="Via: " + ",".join(["SIP/2.0/UDP 10.0.0.%d:5060;branch=z9hG4bK%d" % (i % 250, i)
                                             for i in range(600)]) + "\r\n"))  # many Vias
b, c = ids()
hostile.append(msg("OPTIONS sip:example.com SIP/2.0", b, c, "OPTIONS",
                   extra="".join("X-H%d: v\r\n" % i for i in range(2000))))  # many headers
b, c = ids()
big = msg("OPTIONS sip:example.com SIP/2.0", b, c, "OPTIONS", extra="X-Big: " + "A" * 65536 + "\r\n")
pad = len(big) - 65507
hostile.append(msg("OPTIONS sip:example.com SIP/2.0", b, c, "OPTIONS",
                   extra="X-Big: " + "A" * (65536 - pad) + "\r\n"))  # one 64 KiB header, 65507 bytes
assert len(hostile[-1]) == 65507, len(hostile[-1])
rnd = random.Random(4475)
for _ in range(300):                                             # binary garbage, fixed seed
    hostile.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 1400))))
for _ in range(100):                                             # mutated valid INVITEs
    m = bytearray(full)
    for _ in range(rnd.randrange(1, 8)):
        m[rnd.randrange(len(m))] = rnd.getrandbits(8)
    hostile.append(bytes(m))

sent = 0
for i, d in enumerate(hostile):
    try:
        s.sendto(d, dst)
        sent += 1
    except OSError as e:
        result(False, "send_hostile_%d" % i, str(e))
    if i % 50 == 49:
        time.sleep(0.02)   # stay far below any receive buffer limit
result(sent == len(hostile), "hostile_datagrams_sent (%d)" % sent)
time.sleep(0.5)
drain()

options_ping("options_200_after")

# ---- malformed INVITEs whose Via is routable: 400 -----------------------------------
cases = {
    # RFC 3261 §18.3: the datagram ends before Content-Length bytes of body -> 400
    "content_length_beyond_datagram": dict(body="v=0\r\n", clen="500"),
    "content_length_not_a_number": dict(body="v=0\r\n", clen="abc"),
    "content_length_negative": dict(clen="-5"),
    "cseq_not_a_number": dict(extra="", method_override="CSeq: x INVITE"),
}
for name, kw in cases.items():
    b, c = ids()
    cseq = kw.pop("method_override", None)
    m = msg("INVITE sip:2551234@example.com SIP/2.0", b, c, "INVITE", **kw)
    if cseq:
        m = m.replace(b"CSeq: 1 INVITE", cseq.encode())
    s.sendto(m, dst)
    line = await_reply(c)
    result(line is not None and line.startswith("SIP/2.0 400"), "malformed_invite_400_" + name, repr(line))

options_ping("options_200_at_end")
sys.exit(1 if fails else 0)
PYEOF

timeout 120 python3 "$IT_WORK/malformed.py" "$PORT" >"$IT_WORK/malformed.out" 2>&1
py_rc=$?
cat "$IT_WORK/malformed.out"
IT_CHECKS=$((IT_CHECKS + $(grep -c '^\(PASS\|FAIL\)  ' "$IT_WORK/malformed.out")))
IT_FAILS=$((IT_FAILS + $(grep -c '^FAIL  ' "$IT_WORK/malformed.out")))
if [ "$py_rc" -ne 0 ] && ! grep -q '^FAIL  ' "$IT_WORK/malformed.out"; then
	it_fail malformed_client "python3 client exited $py_rc"
fi

if it_pid_alive "$REFEREE_PID"; then
	it_check referee_alive_after_malformed_input
else
	it_fail referee_alive_after_malformed_input "process $REFEREE_PID is gone"
fi
referee_stop_check 5
it_finish

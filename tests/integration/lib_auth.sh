# lib_auth.sh - helpers for referee's digest-auth integration tests (test_auth_sipp.sh,
# test_auth_redis.sh), sourced after lib.sh: several named referee instances, a private
# redis-server, /metrics reads, SIPp injection files generated at run time, and sipauth.py,
# a stdlib-only python3 UDP SIP client for exact header checks (SPEC §3, §4, §6).
# Every server binds 127.0.0.1 on a free port, is started through it_spawn (killed by PID
# in lib.sh's EXIT trap) and every wait is bounded. Not a test framework: checks go
# through it_check/it_fail.

AUTHIT_PY=$IT_WORK/sipauth.py
AUTHIT_REALM=example.com

# authit_free_tcp_port: a TCP port of 127.0.0.1 nobody has bound right now.
authit_free_tcp_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# authit_expect CHECK WANT GOT: record CHECK passed when GOT equals WANT.
authit_expect() {
	if [ "$3" = "$2" ]; then it_check "$1 ($2)"; else it_fail "$1" "want '$2', got '$3'"; fi
}

# authit_ha1_md5 USER PASSWORD: MD5(user:realm:password) in hex (SPEC §3).
authit_ha1_md5() {
	printf '%s:%s:%s' "$1" "$AUTHIT_REALM" "$2" | md5sum | cut -d' ' -f1
}

# authit_bench_perms USER: the permissions of USER by the benchmark's data rule
# (bench-reference/gen_data.sh: user%10==9 none, even Local+International, odd Local).
authit_bench_perms() {
	local u=$1
	if [ $((u % 10)) -eq 9 ]; then
		echo ""
	elif [ $((u % 2)) -eq 0 ]; then
		echo "LocalDialing InternationalDialing"
	else
		echo "LocalDialing"
	fi
}

# ---- referee instances ---------------------------------------------------------------------

# authit_referee_start NAME CONFIG PORT: --check the config, start referee (stderr in
# $IT_WORK/NAME.err), wait for its UDP port. Sets AUTHIT_PID.
authit_referee_start() {
	local name=$1 cfgf=$2 port=$3
	[ -x "$REFEREE_BIN" ] || it_die "referee binary not found at $REFEREE_BIN (build target 'referee')"
	if ! "$REFEREE_BIN" -c "$cfgf" --check >"$IT_WORK/$name.check" 2>&1; then
		cat "$IT_WORK/$name.check"
		it_die "referee --check rejected $cfgf"
	fi
	it_spawn "$name" "$REFEREE_BIN" -c "$cfgf"
	AUTHIT_PID=$IT_LAST_PID
	if ! it_wait_udp_port "$port" 20 "$AUTHIT_PID"; then
		tail -n 30 "$IT_WORK/$name.err"
		it_die "referee $name did not bind udp 127.0.0.1:$port (pid $AUTHIT_PID)"
	fi
	it_log "referee $name pid $AUTHIT_PID on udp 127.0.0.1:$port"
}

# authit_referee_stop NAME PID: SIGTERM, exit 0 and no sanitizer report (lib.sh's
# referee_stop_check on that instance).
authit_referee_stop() {
	REFEREE_PID=$2
	REFEREE_ERR=$IT_WORK/$1.err
	echo "-- referee $1:"
	referee_stop_check 10
}

# authit_wait_tcp_port PORT SECONDS: wait until a TCP PORT of 127.0.0.1 listens.
authit_wait_tcp_port() {
	for _ in $(seq $(($2 * 10))); do
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# authit_metric PORT NAME [LABEL_REGEX]: the sum of the samples of metric NAME (lines
# "NAME{...} V" or "NAME V") served on 127.0.0.1:PORT/metrics whose labels match
# LABEL_REGEX; "NA" when /metrics cannot be read.
authit_metric() {
	python3 - "$@" <<'PY'
import re, sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
want = re.compile(sys.argv[3] if len(sys.argv) > 3 else "")
try:
    text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=3).read().decode()
except Exception:
    print("NA")
    sys.exit(0)
total = 0.0
for line in text.splitlines():
    m = re.match(r"^%s(\{[^}]*\})?\s+(\S+)$" % re.escape(name), line)
    if m and want.search(m.group(1) or ""):
        total += float(m.group(2))
print(int(total) if total == int(total) else total)
PY
}

# ---- Redis ---------------------------------------------------------------------------------

AUTHIT_RPORT=""
AUTHIT_REDIS_PID=""
# authit_redis_start NAME: a private redis-server on 127.0.0.1:$AUTHIT_RPORT (chosen on the
# first call, kept for restarts), no persistence. Sets AUTHIT_REDIS_PID.
authit_redis_start() {
	[ -n "$AUTHIT_RPORT" ] || AUTHIT_RPORT=$(authit_free_tcp_port)
	it_spawn "$1" redis-server --port "$AUTHIT_RPORT" --bind 127.0.0.1 --save '' --appendonly no
	AUTHIT_REDIS_PID=$IT_LAST_PID
	for _ in $(seq 50); do
		[ "$(redis-cli -p "$AUTHIT_RPORT" ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	cat "$IT_WORK/$1.out" "$IT_WORK/$1.err"
	it_die "redis-server did not answer on port $AUTHIT_RPORT"
}

# ---- SIPp ----------------------------------------------------------------------------------

# authit_sipp_csv FILE TARGET_KIND USER:PASSWORD...: a SEQUENTIAL injection file
# "user;[authentication username=U password=P];target" (SIPp 3.6.1 does not expand
# [fieldN] inside [authentication], but parses one injected whole). TARGET_KIND: "bench"
# (even users 011442071UUUU, odd 255UUUU, as the benchmark) or a fixed number.
authit_sipp_csv() {
	local f=$1 kind=$2 up u p t
	shift 2
	echo SEQUENTIAL >"$f"
	for up in "$@"; do
		u=${up%%:*}
		p=${up#*:}
		if [ "$kind" = bench ]; then
			if [ $((u % 2)) -eq 0 ]; then t=$(printf '011442071%04d' "$u"); else t=$(printf '255%04d' "$u"); fi
		else
			t=$kind
		fi
		echo "$u;[authentication username=$u password=$p];$t" >>"$f"
	done
}

# ---- sipauth.py ----------------------------------------------------------------------------

# sipauth ARGS...: run the python3 client (bounded by timeout 60). Output: one line per
# request sent, "STEP RESULT" (RESULT: forwarded, a status code or timeout), then
# "STEP.reason PHRASE" and "STEP.hdr HEADER-LINE" for Proxy-Authenticate and Retry-After.
sipauth() {
	timeout 60 python3 "$AUTHIT_PY" "$@" 2>>"$IT_WORK/sipauth.err"
}

# authit_line OUTPUT KEY: the rest of the first line of OUTPUT starting with "KEY ".
authit_line() {
	printf '%s\n' "$1" | awk -v k="$2" '$1 == k { sub(/^[^ ]+ /, ""); print; exit }'
}

cat >"$AUTHIT_PY" <<'PY'
# sipauth.py - referee auth integration tests: a SIP UDP client (INVITE over 127.0.0.x) that
# answers 407 challenges with RFC 7616 digest (MD5 or SHA-256, qop=auth). Each INVITE
# carries a preloaded Route to this script's own sink socket, so a request referee
# authorizes is forwarded to us ("forwarded") whatever routes.local is.
# Modes: anon (no credentials), call (challenge, answer, optional replay / next nc / other
# instance / forged nonce / delay), poll (repeat call until a wanted result, bounded),
# limit (failure limiter: COUNT bad answers, blocked until the window ends).
import argparse, hashlib, random, re, select, socket, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["anon", "call", "poll", "limit"])
ap.add_argument("--to", type=int, required=True, help="referee port for the first INVITE")
ap.add_argument("--answer-to", type=int, help="referee port for the answer (default --to)")
ap.add_argument("--replay-to", type=int, help="resend the accepted credential, new Call-ID/branch")
ap.add_argument("--next-to", type=int, help="then the same nonce with nc+1")
ap.add_argument("--src", default="127.0.0.1")
ap.add_argument("--user", default="caller")
ap.add_argument("--pw", default="")
ap.add_argument("--good-pw", default="", help="limit: the right password")
ap.add_argument("--target", required=True)
ap.add_argument("--domain", default="example.com")
ap.add_argument("--from-domain", default="example.com")
ap.add_argument("--algo", default="MD5", choices=["MD5", "SHA-256"])
ap.add_argument("--delay", type=float, default=0.0, help="seconds between challenge and answer")
ap.add_argument("--forge", action="store_true", help="alter one character of the nonce")
ap.add_argument("--want", default="forwarded", help="poll: the result to wait for")
ap.add_argument("--within", type=float, default=1.0, help="poll: seconds")
ap.add_argument("--count", type=int, default=5, help="limit: auth.failure_limit.count")
ap.add_argument("--window", type=int, default=10, help="limit: auth.failure_limit.window")
ap.add_argument("--wait", type=float, default=3.0, help="seconds to wait for an answer")
ap.add_argument("--retransmit-after", type=float, default=0.0,
                help="call: send the answer again (the same bytes) after S seconds, then report "
                     "whether it was forwarded and every reply the proxy sent to either copy")
a = ap.parse_args()

cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
cli.bind((a.src, 0))
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", 0))
lport, sport = cli.getsockname()[1], sink.getsockname()[1]
ruri = "sip:%s@%s" % (a.target, a.domain)
rnd = lambda bits: "%x" % random.getrandbits(bits)

def H(algo, s):
    return (hashlib.sha256 if algo == "SHA-256" else hashlib.md5)(s.encode()).hexdigest()

def invite(port, callid, tag, cseq, auth):
    """send the INVITE; returns its bytes (for a retransmission)"""
    msg = ("INVITE %s SIP/2.0\r\n"
           "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\n"
           "Route: <sip:127.0.0.1:%d;lr>\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:%s@%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: %d INVITE\r\n"
           "Contact: <sip:%s@%s:%d>\r\n%sContent-Length: 0\r\n\r\n") % (
        ruri, a.src, lport, rnd(64), sport, a.user, a.from_domain, tag, ruri, callid, cseq,
        a.user, a.src, lport, ("Proxy-Authorization: %s\r\n" % auth) if auth else "")
    cli.sendto(msg.encode(), ("127.0.0.1", port))
    return msg.encode()

def hdr_value(msg, name):
    out = []
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            out.append(v.strip())
    return out

def result(callid):
    """("forwarded", msg) when the INVITE reached our sink, (code, msg) for a final
    reply, ("timeout", "") when nothing came within --wait seconds."""
    end = time.monotonic() + a.wait
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return "timeout", ""
        r, _, _ = select.select([cli, sink], [], [], left)
        for s in r:
            data = s.recv(65535).decode(errors="replace")
            if callid not in hdr_value(data, "call-id"):
                continue
            if s is sink:
                return "forwarded", data
            code = data.split(" ", 2)[1]
            if not code.startswith("1"):
                return code, data

def report(step, res):
    code, msg = res
    print("%s %s" % (step, code))
    if msg and code != "forwarded":
        print("%s.reason %s" % (step, msg.split("\r\n", 1)[0].split(" ", 2)[2]))
        for line in msg.split("\r\n")[1:]:
            if not line:
                break
            if line.lower().startswith(("proxy-authenticate:", "retry-after:")):
                print("%s.hdr %s" % (step, line))
    sys.stdout.flush()
    return code

def get_challenge(port, step):
    callid, tag = rnd(64) + "@sipauth", rnd(32)
    invite(port, callid, tag, 1, None)
    res = result(callid)
    if step:
        report(step, res)
    if res[0] != "407":
        return res[0], None
    for v in hdr_value(res[1], "proxy-authenticate"):
        p = dict((k, v1 if v1 else v2) for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^",\s]*))', v))
        if p.get("algorithm", "MD5").upper() == a.algo:
            return "407", p
    return "no-" + a.algo, None

def authorization(p, pw, nc, cnonce):
    ha1 = H(a.algo, "%s:%s:%s" % (a.user, p["realm"], pw))
    ha2 = H(a.algo, "INVITE:" + ruri)
    resp = H(a.algo, "%s:%s:%08x:%s:auth:%s" % (ha1, p["nonce"], nc, cnonce, ha2))
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, '
            'qop=auth, nc=%08x, cnonce="%s"%s') % (a.user, p["realm"], p["nonce"], ruri, resp, a.algo,
            nc, cnonce, (', opaque="%s"' % p["opaque"]) if "opaque" in p else "")

def answer(port, step, auth):
    callid, tag = rnd(64) + "@sipauth", rnd(32)
    invite(port, callid, tag, 2, auth)
    res = result(callid)
    return report(step, res) if step else res[0]

def answer_retransmitted(port, step, auth, after):
    """the answer, and the same bytes again after AFTER s (a UDP retransmission): prints
    "STEP forwarded|timeout" and "STEP.replies CODE,..." (final replies to either copy)"""
    callid, tag = rnd(64) + "@sipauth", rnd(32)
    msg = invite(port, callid, tag, 2, auth)
    time.sleep(after)
    cli.sendto(msg, ("127.0.0.1", port))
    forwarded, codes, end = False, [], time.monotonic() + a.wait
    while time.monotonic() < end:
        r, _, _ = select.select([cli, sink], [], [], max(0.0, end - time.monotonic()))
        for s in r:
            data = s.recv(65535).decode(errors="replace")
            if callid not in hdr_value(data, "call-id"):
                continue
            if s is sink:
                forwarded = True
            elif not data.split(" ", 2)[1].startswith("1"):
                codes.append(data.split(" ", 2)[1])
    print("%s %s" % (step, "forwarded" if forwarded else "timeout"))
    print("%s.replies %s" % (step, ",".join(codes) if codes else "none"))
    sys.stdout.flush()
    return "forwarded" if forwarded else "timeout"

def forge(nonce):
    i = len(nonce) // 2
    return nonce[:i] + ("B" if nonce[i] == "A" else "A") + nonce[i + 1:]

def mode_call(quiet=False):
    code, p = get_challenge(a.to, None if quiet else "challenge")
    if p is None:
        return code
    if a.forge:
        p["nonce"] = forge(p["nonce"])
    if a.delay:
        time.sleep(a.delay)
    cnonce = rnd(48)
    auth = authorization(p, a.pw, 1, cnonce)
    if a.retransmit_after:
        return answer_retransmitted(a.answer_to or a.to, "answer", auth, a.retransmit_after)
    code = answer(a.answer_to or a.to, None if quiet else "answer", auth)
    if a.replay_to:
        answer(a.replay_to, "replay", auth)
    if a.next_to:
        answer(a.next_to, "next", authorization(p, a.pw, 2, cnonce))
    return code

def mode_limit():
    # The limiter counts in fixed windows of CLOCK_MONOTONIC_COARSE seconds / window (as
    # auth_limit.c): start early in a window so the COUNT failures fall in one.
    clk = getattr(time, "CLOCK_MONOTONIC_COARSE", 6)  # 6: its Linux id (not exported by every python)
    now = lambda: time.clock_gettime(clk)
    if now() % a.window > a.window - 4:
        time.sleep(a.window - now() % a.window + 0.2)
    for i in range(1, a.count + 1):
        code, p = get_challenge(a.to, None)
        if p is None:
            print("bad%d challenge-%s" % (i, code))
            return
        answer(a.to, "bad%d" % i, authorization(p, a.pw, 1, rnd(48)))
    get_challenge(a.to, "blocked_anon")
    answer(a.to, "blocked_good", authorization(p, a.good_pw, 1, rnd(48)))
    boundary = (now() // a.window + 1) * a.window
    if boundary - now() > 1.0:
        time.sleep(boundary - now() - 0.8)
        get_challenge(a.to, "late_anon")
    time.sleep(max(0.0, boundary - now()) + 0.3)
    a.pw = a.good_pw
    report("after", (mode_call(quiet=True), ""))

if a.mode == "anon":
    get_challenge(a.to, "anon")
elif a.mode == "call":
    mode_call()
elif a.mode == "poll":
    t0, code, n = time.monotonic(), "none", 0
    while n < 100 and time.monotonic() - t0 < a.within:
        n += 1
        code = mode_call(quiet=True)
        if code == a.want:
            break
        time.sleep(0.05)
    print("poll %s %.2fs %d tries" % (code, time.monotonic() - t0, n))
else:
    mode_limit()
PY

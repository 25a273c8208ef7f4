# shellcheck shell=bash
# lib_ops.sh - helpers of the operations tests (test_metrics_prom.sh, test_reload.sh,
# test_package.sh); sourced after lib.sh, whose work folder ($IT_WORK), it_spawn and EXIT
# trap they use. Single SIP requests and malformed datagrams from a small Python client
# (ops_sip), HTTP status codes, values read from a /metrics text, and a private Prometheus
# server (ops_prom_*) scraping referee on 127.0.0.1. Every wait is bounded.

OPS_SIP_PY=$IT_WORK/ops_sip.py
cat >"$OPS_SIP_PY" <<'PYEOF'
# ops_sip.py - one SIP request (or raw datagram) to referee, prints what became of it:
#   the final status code ("407", "403 Relaying Denied" with --reason), "forwarded" when the
#   request reached the --sink port instead, or "none" after --timeout seconds.
# With --user/--password a 407 is answered once with a Digest Proxy-Authorization (MD5, qop=auth).
import argparse, hashlib, os, re, select, socket, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--src", default="127.0.0.1")
ap.add_argument("--method", default="INVITE")
ap.add_argument("--ruri", default="sip:example.com")
ap.add_argument("--from-uri", default="sip:probe@it.invalid")
ap.add_argument("--route")
ap.add_argument("--sink", type=int)
ap.add_argument("--raw", help="file whose bytes are sent as they are (@LPORT@: our port)")
ap.add_argument("--user")
ap.add_argument("--password")
ap.add_argument("--reason", action="store_true")
ap.add_argument("--timeout", type=float, default=2.0)
a = ap.parse_args()

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((a.src, 0))
lport = s.getsockname()[1]
socks = [s]
sink = None
if a.sink:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", a.sink))
    socks.append(sink)
dest = ("127.0.0.1", a.port)
callid = os.urandom(8).hex() + "@ops"
tag = os.urandom(4).hex()


def request(cseq, auth=None):
    branch = "z9hG4bK" + os.urandom(6).hex()
    h = [f"{a.method} {a.ruri} SIP/2.0",
         f"Via: SIP/2.0/UDP {a.src}:{lport};branch={branch};rport",
         "Max-Forwards: 70",
         f"From: <{a.from_uri}>;tag={tag}",
         f"To: <{a.ruri}>",
         f"Call-ID: {callid}",
         f"CSeq: {cseq} {a.method}",
         f"Contact: <sip:probe@{a.src}:{lport}>"]
    if a.route:
        h.append(f"Route: <{a.route}>")
    if auth:
        h.append("Proxy-Authorization: " + auth)
    h += ["Content-Length: 0", "", ""]
    return "\r\n".join(h).encode()


def digest(challenge, cseq):
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = p["realm"], p["nonce"]
    md5 = lambda t: hashlib.md5(t.encode()).hexdigest()
    ha1 = md5(f"{a.user}:{realm}:{a.password}")
    ha2 = md5(f"{a.method}:{a.ruri}")
    cnonce, nc = os.urandom(4).hex(), "00000001"
    resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    out = (f'Digest username="{a.user}", realm="{realm}", nonce="{nonce}", uri="{a.ruri}", '
           f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')
    if "opaque" in p:
        out += f', opaque="{p["opaque"]}"'
    return out


def wait_final():
    end = time.monotonic() + a.timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None, None
        r, _, _ = select.select(socks, [], [], left)
        for x in r:
            data = x.recv(65535).decode("latin-1")
            if x is sink:
                return "forwarded", data
            m = re.match(r"SIP/2\.0 (\d{3}) ?([^\r\n]*)", data)
            if m and int(m.group(1)) >= 200:
                return m.group(1) + (" " + m.group(2) if a.reason else ""), data
            if not m:
                return "reply:" + data.split("\r\n", 1)[0], data


if a.raw:
    s.sendto(open(a.raw, "rb").read().replace(b"@LPORT@", str(lport).encode()), dest)
    res, _ = wait_final()
    print(res or "none")
    sys.exit(0)
s.sendto(request(1), dest)
res, data = wait_final()
if res and res.startswith("407") and a.user:
    m = re.search(r"^Proxy-Authenticate: *(Digest [^\r\n]*algorithm=MD5[^\r\n]*)", data, re.M | re.I)
    if m:
        s.sendto(request(2, digest(m.group(1), 2)), dest)
        res, data = wait_final()
print(res or "none")
PYEOF

# ops_sip ARGS...: run ops_sip.py (see its header); prints the outcome.
ops_sip() { python3 "$OPS_SIP_PY" "$@" 2>>"$IT_WORK/ops_sip.err" || echo error; }

# ops_blast PORT SRC COUNT RATE SECS: COUNT OPTIONS to referee on 127.0.0.1:PORT from SRC (one
# socket, RATE a second), at most SECS seconds; prints "sent answered seconds" once every answer
# had 1 s to come back. referee answers each OPTIONS it admits with exactly one 200, so
# "answered" is what the flood limiter let through (test_flood.sh, test_overload.sh).
ops_blast() {
	python3 - "$@" <<'EOF'
import select, socket, sys, time
port, src, count, rate, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((src, 0))
lport = s.getsockname()[1]
sent = got = 0
t0 = time.time()
while sent < count and time.time() - t0 < secs:
    msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP {src}:{lport};branch=z9hG4bK-blast-{sent}\r\n"
           "Max-Forwards: 70\r\n"
           f"From: <sip:blaster@it.invalid>;tag=b{sent}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
           f"Call-ID: blast-{sent}@{src}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
    s.sendto(msg, ("127.0.0.1", port))
    sent += 1
    if sent % 20 == 0:  # answers wait in the 4 MB buffer meanwhile
        while select.select([s], [], [], 0)[0]:
            s.recv(65535); got += 1
    if sent % 100 == 0:
        time.sleep(max(0.0, t0 + sent / rate - time.time()))
end = time.time() + 1.0
while time.time() < end:
    if select.select([s], [], [], 0.1)[0]:
        s.recv(65535); got += 1
print(sent, got, round(time.time() - t0 - 1.0, 2))
EOF
}

# ops_free_tcp_port: a TCP port of 127.0.0.1 that nobody listens on right now.
ops_free_tcp_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ops_http_status URL: the HTTP status code (000 when nobody answers), 2 s at most.
ops_http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

# ops_wait_http URL CODE SECONDS: wait until URL answers CODE.
ops_wait_http() {
	local n=$(($3 * 10))
	for _ in $(seq "$n"); do
		[ "$(ops_http_status "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ops_metric FILE SERIES: the value of SERIES (exactly as exposed, e.g.
# 'referee_requests_total{method="OPTIONS"}') in the exposition text FILE, or NA.
ops_metric() {
	awk -v s="$2" '$1 == s { v = $2; f = 1 } END { if (f) print v; else print "NA" }' "$1"
}

# ops_metric_sum FILE NAME: the sum of every series of family NAME (all label values), or NA.
ops_metric_sum() {
	awk -v n="$2" '{ k = $1; sub(/\{.*/, "", k) } k == n && $1 !~ /^#/ { t += $2; f = 1 }
		END { if (f) printf "%d\n", t; else print "NA" }' "$1"
}

# ---- Prometheus -------------------------------------------------------------------------

OPS_PROM_URL=""

# ops_prom_start TARGET [RULES_FILE]: a private Prometheus server (its own config, TSDB and
# web port in $IT_WORK/prom) scraping http://TARGET/metrics every second as job "referee",
# evaluating RULES_FILE when given. Sets OPS_PROM_URL.
ops_prom_start() {
	local target=$1 rules=${2:-} d=$IT_WORK/prom port
	mkdir -p "$d/data"
	port=$(ops_free_tcp_port)
	cat >"$d/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
${rules:+rule_files: [$rules]}
scrape_configs:
  - job_name: referee
    static_configs:
      - targets: ['$target']
EOF
	promtool check config "$d/prometheus.yml" >"$d/check.out" 2>&1 || {
		cat "$d/check.out"
		it_die "promtool rejected the generated Prometheus config"
	}
	it_spawn prometheus prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" \
		--web.listen-address="127.0.0.1:$port" --log.level=warn
	OPS_PROM_PID=$IT_LAST_PID
	OPS_PROM_URL=http://127.0.0.1:$port
	ops_wait_http "$OPS_PROM_URL/-/ready" 200 30 || {
		tail -n 20 "$IT_WORK/prometheus.err"
		it_die "Prometheus did not become ready on $OPS_PROM_URL"
	}
	it_log "prometheus pid $OPS_PROM_PID on $OPS_PROM_URL scraping $target"
}

# ops_prom_query EXPR: the value of the first sample of an instant query, or NA.
ops_prom_query() {
	curl -s -m 3 -G "$OPS_PROM_URL/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
		python3 -c 'import json, sys
try:
    r = json.load(sys.stdin)["data"]["result"]
    print(r[0]["value"][1] if r else "NA")
except Exception:
    print("NA")'
}

# ops_prom_wait EXPR VALUE SECONDS: wait until the query EXPR returns VALUE (compared as
# numbers); prints the last value seen.
ops_prom_wait() {
	local v=NA n=$(($3 * 2))
	for _ in $(seq "$n"); do
		v=$(ops_prom_query "$1")
		[ "$v" != NA ] && awk -v a="$v" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0) }' && break
		sleep 0.5
	done
	echo "$v"
}

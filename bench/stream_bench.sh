#!/usr/bin/env bash
# stream_bench.sh - TCP/TLS figures of issue 10 (SPEC §9), bounded, never part of CI:
#   mem         RSS growth per idle connection: N (default 20000) TCP connections held open to one
#               referee, then N TLS connections (full handshakes, then idle), from many source
#               addresses in 127.0.0.0/8 (no port exhaustion); RSS from /proc/PID/status.
#   handshake   full TLS handshakes (ECDSA P-256, no resumption) for SECONDS: referee CPU per
#               handshake and handshakes per referee CPU-second (what one core sustains).
#   calls       CPU per relayed call (INVITE/200/ACK/BYE/200, SIPp UAC -> referee -> SIPp UAS
#               over UDP) at RATE cps for SECONDS: the UAC over UDP, over TCP (-t t1), over TLS
#               (stunnel in client mode in front of SIPp, resumed sessions: one connection);
#               referee CPU = utime+stime of /proc/PID/stat around the run / successful calls.
#   kamailio-mem  the `mem` measure (N idle TLS connections) against Kamailio 5.6 with tls.so and
#               2 TCP children, same certificate, same client: growth of PSS summed over its
#               processes (its shared pool counted once) and of the RSS sum.
#   kamailio-handshake  the `handshake` client against that Kamailio: its CPU (all processes) per
#               full handshake.
# Usage: bench/stream_bench.sh [mem|handshake|calls|kamailio-mem|kamailio-handshake|all]   (BIN=build/referee, N, RATE, SECONDS)
# Prints one line per figure and appends them to bench/report/stream.tsv.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BIN=${BIN:-$SRC/build/referee}
N=${N:-20000}
RATE=${RATE:-500}
SECONDS_LOAD=${SECONDS:-10}
WHAT=${1:-all}
W=$(mktemp -d /tmp/referee-stream-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; [ "${KEEP:-0}" = 1 ] && echo "kept $W" >&2 || rm -rf "$W"; }
trap cleanup EXIT
[ -x "$BIN" ] || { echo "no referee binary at $BIN (cmake --build build --target referee)" >&2; exit 2; }
ulimit -n 200000 2>/dev/null || ulimit -n 65536 || true
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_tcp() { for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
mkdir -p "$SRC/bench/report"
out() { printf '%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$(git -C "$SRC" rev-parse --short HEAD)" "$*" | tee -a "$SRC/bench/report/stream.tsv"; }

# certificates and a referee with udp, tcp and tls listen addresses
(cd "$W" && umask 077 &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.pem &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=proxy.test -keyout server.key -out server.csr &&
	printf 'subjectAltName=DNS:proxy.test,IP:127.0.0.1\n' >server.ext &&
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem) >/dev/null 2>&1
(umask 077 && head -c 32 /dev/urandom | base64 >"$W/secret")
printf 'users: []\n' >"$W/users.yaml"
UPORT=$(free_port)
TPORT=$(free_port)
SPORT=$(free_port)
UAS_PORT=$(free_port)
cat >"$W/referee.yaml" <<EOF
listen: [udp://127.0.0.1:$UPORT, tcp://127.0.0.1:$UPORT, tls://127.0.0.1:$TPORT]
domains: [example.com]
secret_file: $W/secret
threads: {receivers: 2, workers: 2, inline_receive: true}
routes: {local: udp://127.0.0.1:$UAS_PORT}
store: {backend: file, file: $W/users.yaml}
rules: [{hosts: [example.com], users: ["255xxxx"], permissions: []}]
tls: {certificate: $W/server.pem, private_key: $W/server.key}
tcp: {max_connections: 100000, max_per_source: 100000, idle_timeout: 3600, read_timeout: 60}
# as bench/run.sh: the UAS answers no OPTIONS (probes would take the route down after 30 s) and one
# SIPp client is one source (the default source_rate would drop its calls); Kamailio has neither
health: {interval: 0}
limits: {source_rate: {rate: 1000000, burst: 1000000}}
log_level: warn
EOF
"$BIN" -c "$W/referee.yaml" >"$W/referee.out" 2>"$W/referee.err" &
RPID=$!
PIDS+=("$RPID")
wait_tcp "$TPORT" || { cat "$W/referee.err"; exit 1; }

hold() { # tcp|tls COUNT: open COUNT connections, keep them idle, print "ready", wait for stdin EOF
	cat >"$W/hold.py" <<'PY'
import selectors, socket, ssl, sys, time
kind, n, uport, tport, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
port = uport if kind == "tcp" else tport
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the client's own CPU is not what is measured
sel = selectors.DefaultSelector()
socks, pending = [], 0
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.bind(("127.0.%d.%d" % (1 + i // 250 % 250, 1 + i % 250), 0))
    s.connect_ex(("127.0.0.1", port))
    if kind == "tls":
        s = ctx.wrap_socket(s, server_hostname="proxy.test", do_handshake_on_connect=False)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        pending += 1
    socks.append(s)
    if kind == "tls" and pending > 200:
        while pending > 100:
            for key, _ in sel.select(5):
                try:
                    key.fileobj.do_handshake()
                    sel.unregister(key.fileobj)
                    pending -= 1
                except OSError as e:  # want read/write, or connect still in progress
                    if not isinstance(e, (ssl.SSLWantReadError, ssl.SSLWantWriteError)) and e.errno not in (11, 107, 115):
                        raise
while pending:
    for key, _ in sel.select(5):
        try:
            key.fileobj.do_handshake()
            sel.unregister(key.fileobj)
            pending -= 1
        except OSError as e:
            if not isinstance(e, (ssl.SSLWantReadError, ssl.SSLWantWriteError)) and e.errno not in (11, 107, 115):
                raise
print("ready", len(socks), flush=True)
sys.stdin.read()
PY
	timeout 900 python3 "$W/hold.py" "$1" "$2" "${3:-$UPORT}" "${4:-$TPORT}" "$W/ca.pem"
}

bench_mem() {
	local kind
	for kind in tcp tls; do
		sleep 1
		local before after opened
		before=$(rss_kb "$RPID")
		mkfifo "$W/hold.$kind"
		hold "$kind" "$N" <"$W/hold.$kind" >"$W/hold.$kind.out" 2>&1 &
		local hp=$!
		exec 9>"$W/hold.$kind"
		for _ in $(seq 600); do grep -q ready "$W/hold.$kind.out" && break; sleep 0.5; done
		# every connection accepted (the backlog may hold some back for a while), then idle
		for _ in $(seq 120); do [ "$(ls "/proc/$RPID/fd" | wc -l)" -ge "$N" ] && break; sleep 0.5; done
		sleep 3
		opened=$(awk '/^ready/ {print $2}' "$W/hold.$kind.out")
		after=$(rss_kb "$RPID")
		local open_now
		open_now=$(ls "/proc/$RPID/fd" | wc -l)
		out "mem_$kind	connections=$opened	referee_fds=$open_now	rss_before_kb=$before	rss_after_kb=$after	bytes_per_connection=$(((after - before) * 1024 / (opened > 0 ? opened : 1)))"
		exec 9>&-
		wait "$hp"
		for _ in $(seq 100); do [ "$(ls "/proc/$RPID/fd" | wc -l)" -lt 100 ] && break; sleep 0.2; done
	done
}

# handshakes PORT: full TLS handshakes (a new SSLSocket each time: no session reuse) for
# SECONDS_LOAD from one Python client; prints how many
handshakes() {
	timeout 120 python3 - "$1" "$SECONDS_LOAD" <<'PY'
import socket, ssl, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
n, end = 0, time.time() + secs
while time.time() < end:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="proxy.test")
    s.close()
    n += 1
print(n)
PY
}

bench_handshake() {
	local t0 t1 n
	t0=$(cpu_ticks "$RPID")
	n=$(handshakes "$TPORT")
	t1=$(cpu_ticks "$RPID")
	local cpu_s
	cpu_s=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
	out "handshake	full_handshakes=$n	seconds=$SECONDS_LOAD	referee_cpu_s=$cpu_s	referee_us_per_handshake=$(awk -v c="$cpu_s" -v n="$n" 'BEGIN { printf "%.0f", n ? c * 1e6 / n : 0 }')	handshakes_per_cpu_second=$(awk -v c="$cpu_s" -v n="$n" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')"
}

# call_runs LABEL_PREFIX UDP_PORT TLS_TUNNEL_PORT CPU_FN: the UAC over UDP, TCP (-t t1) and TLS
# (through stunnel) toward one proxy; CPU_FN prints that proxy's CPU ticks
call_runs() {
	local who=$1 uport=$2 sport=$3 cpu_fn=$4 calls=$((RATE * SECONDS_LOAD)) t label port args
	for t in udp:"$uport": tcp:"$uport":"-t t1" tls:"$sport":"-t t1"; do
		IFS=: read -r label port args <<<"$t"
		local t0 t1 ok
		t0=$($cpu_fn)
		# shellcheck disable=SC2086
		(cd "$W" && timeout $((SECONDS_LOAD * 4 + 30)) sipp "127.0.0.1:$port" -sf "$SRC/tests/integration/sipp/uac_call.xml" \
			-s 2551234 -i 127.0.0.1 -p "$(free_port)" -m "$calls" -r "$RATE" $args -max_socket 100 -nostdin \
			-buff_size 1048576 -trace_stat -stf "$W/$who.$label.csv" >/dev/null 2>&1)
		t1=$($cpu_fn)
		ok=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "SuccessfulCall(C)") c = i; next } { v = $c } END { print v + 0 }' "$W/$who.$label.csv")
		out "${who}call_$label	rate=$RATE	calls=$calls	successful=$ok	cpu_s=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" 'BEGIN { printf "%.2f", (b - a) / t }')	us_per_call=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" -v n="$ok" 'BEGIN { printf "%.1f", n ? (b - a) / t * 1e6 / n : 0 }')"
	done
}

# stunnel_client ACCEPT_PORT CONNECT_PORT: TLS client tunnel (SIPp speaks no TLS), resumed sessions
stunnel_client() {
	printf 'foreground = yes\npid =\n[sip]\nclient = yes\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\nCAfile = %s\nverifyChain = yes\ncheckHost = proxy.test\n' \
		"$1" "$2" "$W/ca.pem" >"$W/stunnel.$1.conf"
	stunnel "$W/stunnel.$1.conf" >/dev/null 2>&1 &
	PIDS+=("$!")
	wait_tcp "$1"
}

referee_cpu_ticks() { cpu_ticks "$RPID"; }

# bench_calls: CPU per relayed call over UDP, TCP and TLS, referee then (KAMAILIO=1, the default
# when kamailio and tls.so are installed) Kamailio 5.6 relaying statelessly to the same UAS
bench_calls() {
	(cd "$W" && exec timeout $((SECONDS_LOAD * 12 + 120)) sipp -sf "$SRC/tests/integration/sipp/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -nostdin \
		-buff_size 1048576 >/dev/null 2>&1) &
	PIDS+=("$!")
	sleep 1
	stunnel_client "$SPORT" "$TPORT"
	call_runs "" "$UPORT" "$SPORT" referee_cpu_ticks
	[ "${KAMAILIO:-1}" = 1 ] && command -v kamailio >/dev/null || return 0
	KRELAY=$UAS_PORT kamailio_start || return
	local ksport
	ksport=$(free_port)
	stunnel_client "$ksport" "$KPORT"
	call_runs "kamailio_" "$KPORT_PLAIN" "$ksport" kamailio_cpu_ticks
	kamailio_stop
}

# pss_kb / rss_sum_kb PID...: summed over processes (smaps_rollup's Pss counts a shared page once
# over all of them; the RSS sum counts it in every process that touched it)
pss_kb() { local p s=0 v; for p in "$@"; do v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); s=$((s + ${v:-0})); done; echo "$s"; }
rss_sum_kb() { local p s=0 v; for p in "$@"; do v=$(rss_kb "$p" 2>/dev/null); s=$((s + ${v:-0})); done; echo "$s"; }

# kamailio_start: Kamailio 5.6 as referee's TLS listener is measured: TLS only, no routing logic,
# limits raised so that N connections are accepted and stay idle, shared memory sized for N
# connections (it takes its ~130 KB per TLS connection, kamailio#3980, from that pool as they come).
# Sets KPORT, KSID (its session: every process), KPIDS, KWRAP.
kamailio_start() {
	command -v kamailio >/dev/null || { echo "kamailio not installed (packaging/install-deps.sh --bench)" >&2; return 2; }
	local mods=/usr/lib/x86_64-linux-gnu/kamailio/modules kdir=$W/kamailio
	[ -f "$mods/tls.so" ] || { echo "no $mods/tls.so (kamailio-tls-modules)" >&2; return 2; }
	KPORT=$(free_port)
	KPORT_PLAIN=$(free_port)
	mkdir -p "$kdir"
	printf '[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = %s\ncertificate = %s\n' \
		"$W/server.key" "$W/server.pem" >"$kdir/tls.cfg"
	{
		echo '#!KAMAILIO'
		echo 'debug=1'
		echo 'log_stderror=yes'
		echo 'children=2'
		echo 'tcp_children=2'
		echo 'enable_tls=yes'
		echo "listen=tls:127.0.0.1:$KPORT"
		if [ -n "${KRELAY:-}" ]; then
			echo "listen=udp:127.0.0.1:$KPORT_PLAIN"
			echo "listen=tcp:127.0.0.1:$KPORT_PLAIN"
		fi
		echo "tcp_max_connections=$((N + 1000))"
		echo "tls_max_connections=$((N + 1000))"
		echo 'tcp_connection_lifetime=3600'
		echo "open_files_limit=$((N * 2 + 1000))"
		echo "mpath=\"$mods\""
		echo 'loadmodule "tls.so"'
		echo 'loadmodule "sl.so"'
		echo "modparam(\"tls\", \"config\", \"$kdir/tls.cfg\")"
		if [ -n "${KRELAY:-}" ]; then
			# stateless relay to the UAS, as the reference kamailio.cfg's WITH_NOAUTH calls
			echo 'loadmodule "pv.so"'
			echo "request_route { \$du = \"sip:127.0.0.1:$KRELAY;transport=udp\"; forward(); }"
		else
			echo 'request_route { sl_send_reply("200", "OK"); }'
		fi
	} >"$kdir/kamailio.cfg"
	setsid timeout 1200 kamailio -f "$kdir/kamailio.cfg" -DD -E -m $((N / 4 + 256)) -M 16 -Y "$kdir" \
		>"$kdir/out" 2>"$kdir/err" </dev/null &
	KWRAP=$!
	PIDS+=("$KWRAP")
	wait_tcp "$KPORT" || { tail -20 "$kdir/err" >&2; return 1; }
	sleep 2
	KSID=$(ps -o sid= -p "$KWRAP" | tr -d ' ')
	KPIDS=$(pgrep -s "$KSID" -x kamailio | tr '\n' ' ')
}

kamailio_stop() {
	kill -TERM -- "-$KSID" 2>/dev/null
	wait "$KWRAP" 2>/dev/null
}

# kamailio_cpu_ticks: utime+stime of all its processes
kamailio_cpu_ticks() { local p s=0 v; for p in $KPIDS; do v=$(cpu_ticks "$p" 2>/dev/null); s=$((s + ${v:-0})); done; echo "$s"; }

bench_kamailio_mem() {
	kamailio_start || return
	local before_pss before_rss after_pss after_rss opened hp
	# shellcheck disable=SC2086
	before_pss=$(pss_kb $KPIDS) before_rss=$(rss_sum_kb $KPIDS)
	mkfifo "$W/hold.kam"
	hold tls "$N" 0 "$KPORT" <"$W/hold.kam" >"$W/hold.kam.out" 2>&1 &
	hp=$!
	exec 8>"$W/hold.kam"
	for _ in $(seq 1200); do grep -q ready "$W/hold.kam.out" && break; bench_pid_gone "$hp" && break; sleep 0.5; done
	sleep 3
	opened=$(awk '/^ready/ {print $2}' "$W/hold.kam.out")
	opened=${opened:-0}
	# shellcheck disable=SC2086
	after_pss=$(pss_kb $KPIDS) after_rss=$(rss_sum_kb $KPIDS)
	out "kamailio_mem_tls	connections=$opened	processes=$(wc -w <<<"$KPIDS")	pss_before_kb=$before_pss	pss_after_kb=$after_pss	pss_bytes_per_connection=$(((after_pss - before_pss) * 1024 / (opened > 0 ? opened : 1)))	rss_sum_before_kb=$before_rss	rss_sum_after_kb=$after_rss	rss_sum_bytes_per_connection=$(((after_rss - before_rss) * 1024 / (opened > 0 ? opened : 1)))"
	[ "$opened" -gt 0 ] || tail -5 "$W/hold.kam.out" >&2
	exec 8>&-
	wait "$hp"
	kamailio_stop
}

# bench_kamailio_handshake: bench_handshake's client against Kamailio's TLS listener, its CPU summed
bench_kamailio_handshake() {
	kamailio_start || return
	local t0 t1 n cpu_s
	t0=$(kamailio_cpu_ticks)
	n=$(handshakes "$KPORT")
	t1=$(kamailio_cpu_ticks)
	cpu_s=$(awk -v a="$t0" -v b="$t1" -v t="$TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
	out "kamailio_handshake	full_handshakes=$n	seconds=$SECONDS_LOAD	kamailio_cpu_s=$cpu_s	kamailio_us_per_handshake=$(awk -v c="$cpu_s" -v n="$n" 'BEGIN { printf "%.0f", n ? c * 1e6 / n : 0 }')	handshakes_per_cpu_second=$(awk -v c="$cpu_s" -v n="$n" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')"
	kamailio_stop
}
bench_pid_gone() { ! kill -0 "$1" 2>/dev/null; }

case $WHAT in
mem) bench_mem ;;
kamailio-mem) bench_kamailio_mem ;;
kamailio-handshake) bench_kamailio_handshake ;;
handshake) bench_handshake ;;
calls) bench_calls ;;
all) bench_mem && bench_handshake && bench_calls ;;
*) echo "usage: $0 [mem|handshake|calls|kamailio-mem|kamailio-handshake|all]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# test_overload.sh - offered load above capacity (issue 13 "Overload", SPEC §13):
#   calibration: SIPp calls from a trusted source (127.0.0.6) at CAL_RATES calls/s, CAL_SECS s
#     each; the sustainable rate S is the highest with every call successful, no retransmission
#     and no lag (this box, this build: ASan is ~3x slower, so S is measured, not a constant).
#     limits.source_rate is then reloaded (SIGHUP) to S/2 requests/s (burst the same), bounded to
#     40..200: a call is 3 requests, so the two abusive sources below get at most a third of
#     what the box sustains, and the legitimate source's 15 requests/s stay far below it.
#   overload (OVERLOAD_SECS s, bounded count): SIPp asked for 3xS calls/s from 127.0.0.3 (it
#     starts fewer: its stalled calls' retransmissions take its time) and a raw UDP blast of
#     BLAST OPTIONS at BLAST_RATE/s from 127.0.0.4, while legitimate SIPp calls at
#     5/s from 127.0.0.5 go on (from 1 s before to 3 s after) and a health checker on
#     127.0.0.2 (trusted) sends one OPTIONS every 100 ms all along.
# Checks: drops counted (referee_flood_drops_total), the health checker's OPTIONS answered
# (>= 99 %, never two lost in a row), the legitimate calls succeed (>= 99 %), and within 2 s of the
# end of the load a fresh call from the overloading source succeeds and OPTIONS latency is back
# to its baseline; referee alive, exits 0, no sanitizer report.
# Env: CAL_RATES ("25 50 100 200 400 800 1600 3200 6400": when every step passes, S is the top
# one, a lower bound of what the box sustains), CAL_SECS (3), OVERLOAD_SECS (10), BLAST_RATE
# (9xS requests/s: the blast alone is 3x the sustained request rate, at most 60 000), BLAST
# (BLAST_RATE x OVERLOAD_SECS), SOURCE_RATE (override the derived limits.source_rate rate, e.g.
# 1000000 to see what happens without the limiter).
# it_check always returns 0, so "test && it_check ... || it_fail ..." is an if/else.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ops.sh"

CAL_RATES=${CAL_RATES:-25 50 100 200 400 800 1600 3200 6400}
CAL_SECS=${CAL_SECS:-3}
OVERLOAD_SECS=${OVERLOAD_SECS:-10}
LEGIT_RATE=5
it_need sipp python3 ss timeout curl
PORT=$(it_free_udp_port)
UAS_PORT=$(it_free_udp_port)
HTTP=$(ops_free_tcp_port)
[ "$PORT" != "$UAS_PORT" ] || it_die "free port picker returned a duplicate ($PORT $UAS_PORT)"
for ip in 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6; do
	python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(('$ip', 0))" ||
		it_die "cannot bind $ip (loopback range)"
done

sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" 300
UAS_PID=$IT_LAST_PID
CFG=$IT_WORK/referee.yaml
# write_config RATE BURST
write_config() {
	referee_config "$CFG" "$PORT" "$UAS_PORT" "metrics: {listen: 127.0.0.1:$HTTP}
trusted: [127.0.0.2/32, 127.0.0.6/32]
limits: {source_rate: {rate: $1, burst: $2}}
rules:
  - {hosts: [example.com], users: [\"255xxxx\"], permissions: []}"
}
write_config 200 400
referee_start "$CFG" "$PORT"
ERR=$IT_WORK/referee.err
ops_wait_http "http://127.0.0.1:$HTTP/metrics" 200 10 || it_die "no /metrics on port $HTTP"
scrape() { curl -s -m 2 "http://127.0.0.1:$HTTP/metrics" >"$IT_WORK/$1.prom"; }
now() { date +%s.%N; }
# sstat NAME FIELD: FIELD of the last -trace_stat row of SIPp run NAME
sstat() { sipp_stat_last "$IT_WORK/$1/stat.csv" "$2"; }

# ---- calibration: the highest rate this box sustains, from a trusted (never limited) source ----
S=0
for r in $CAL_RATES; do
	n=$((r * CAL_SECS))
	t0=$(now)
	IT_SIPP_SRC=127.0.0.6 sipp_uac_run "cal$r" "$n" "$r" $((CAL_SECS + 20)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
	secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
	retrans=$(sstat "cal$r" 'Retransmissions(C)')
	it_log "calibration $r calls/s: $SIPP_OK/$n successful, $SIPP_FAILED failed, $retrans retransmissions, ${secs}s"
	# lag: the run may take the planned time plus 1.5 s (SIPp start-up, the last call's
	# round trip) on a busy box; more means referee (or the box) did not keep up
	if [ "$SIPP_RC" -eq 0 ] && [ "$SIPP_OK" = "$n" ] && [ "$SIPP_FAILED" = 0 ] && [ "$retrans" = 0 ] &&
		awk -v s="$secs" -v p="$CAL_SECS" 'BEGIN { exit !(s <= p + 1.5) }'; then
		S=$r
	else
		break
	fi
done
[ "$S" -ge 25 ] || it_die "this box sustains under 25 calls/s through referee (calibration: see $IT_WORK/cal*)"
RATE=$((S / 2))
[ "$RATE" -le 200 ] || RATE=200
[ "$RATE" -ge 40 ] || RATE=40
RATE=${SOURCE_RATE:-$RATE}
BURST=$RATE
[ "$BURST" -le 10000000 ] || BURST=10000000
OVER=$((3 * S))
# the blast alone offers 3x the sustained request rate (3 a call), at most 60 000/s
BLAST_RATE=${BLAST_RATE:-$((9 * S < 60000 ? 9 * S : 60000))}
BLAST=${BLAST:-$((BLAST_RATE * OVERLOAD_SECS))}
it_log "sustainable: $S calls/s; limits.source_rate {rate: $RATE, burst: $BURST}; overload at $OVER calls/s plus $BLAST OPTIONS at $BLAST_RATE/s"
write_config "$RATE" "$BURST"
kill -HUP "$REFEREE_PID"
for _ in $(seq 100); do grep -q 'configuration reloaded from' "$ERR" && break; sleep 0.1; done
grep -q 'configuration reloaded from' "$ERR" && it_check "calibrated: $S calls/s sustained; source_rate $RATE/s reloaded" ||
	it_die "reload with the derived limits.source_rate not applied: $(grep -m 1 'reload' "$ERR")"

# ---- health checker (trusted 127.0.0.2): one OPTIONS every 100 ms, never retransmitted; a line
# per probe "SENT_WALL ANSWERED_WALL LATENCY_MS" (-1 -1 when no 200 came within 2 s, the timeout
# of a typical checker) until $IT_WORK/health.stop exists ------------------------------------------
python3 - "$PORT" "$IT_WORK/health.stop" >"$IT_WORK/health.out" 2>"$IT_WORK/health.err" <<'EOF' &
import os, select, socket, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
lport = s.getsockname()[1]
pending = {}  # branch -> (wall, mono)
n, nxt, stop_at = 0, time.monotonic(), None
while True:
    mono = time.monotonic()
    if stop_at is None and os.path.exists(stop):
        stop_at = mono
    if stop_at is None and mono >= nxt:
        b = f"z9hG4bK-hc-{n}"
        msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{lport};branch={b}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:checker@it.invalid>;tag=hc{n}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
               f"Call-ID: hc-{n}@127.0.0.2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        pending[b] = (time.time(), time.monotonic())
        s.sendto(msg, ("127.0.0.1", port))
        n += 1
        nxt += 0.1
        if nxt < mono:  # starved by the box: keep the pace, do not burst to catch up
            nxt = mono + 0.1
    if select.select([s], [], [], max(0.0, min(nxt - time.monotonic(), 0.02)))[0]:
        data = s.recv(65535).decode(errors="replace")
        if data.startswith("SIP/2.0 200"):
            for b in list(pending):
                if f"branch={b}\r" in data or f"branch={b};" in data:
                    w, m = pending.pop(b)
                    print(f"{w:.3f} {time.time():.3f} {(time.monotonic() - m) * 1000:.2f}", flush=True)
    mono = time.monotonic()
    for b in [b for b, (w, m) in pending.items() if mono - m > 2.0]:
        print(f"{pending.pop(b)[0]:.3f} -1 -1", flush=True)
    if stop_at is not None and (not pending or mono - stop_at > 2.5):
        break
EOF
HEALTH_PID=$!
IT_PIDS+=("$HEALTH_PID")
sleep 2 # baseline OPTIONS latency: 20 probes before any load
scrape before

# ---- legitimate calls (127.0.0.5) from 1 s before to 3 s after the overload ----------------------
LEGIT=$((LEGIT_RATE * (OVERLOAD_SECS + 4)))
(IT_SIPP_SRC=127.0.0.5 sipp_uac_run legit "$LEGIT" "$LEGIT_RATE" $((OVERLOAD_SECS + 60)) "$PORT" \
	"$IT_SIPP_DIR/uac_call.xml" -s 2551234 && echo "$SIPP_RC" >"$IT_WORK/legit.rc") &
LEGIT_PID=$!
IT_PIDS+=("$LEGIT_PID")
sleep 1

# ---- overload: SIPp at 3xS from 127.0.0.3, a raw blast from 127.0.0.4, both bounded --------------
T_START=$(now)
(IT_SIPP_SRC=127.0.0.3 sipp_uac_run over $((OVER * OVERLOAD_SECS)) "$OVER" "$OVERLOAD_SECS" "$PORT" \
	"$IT_SIPP_DIR/uac_call.xml" -s 2551234) 2>"$IT_WORK/over.log" &
OVER_PID=$!
IT_PIDS+=("$OVER_PID")
# BLAST OPTIONS at BLAST_RATE/s from 127.0.0.4, at most OVERLOAD_SECS s ("sent answered seconds")
ops_blast "$PORT" 127.0.0.4 "$BLAST" "$BLAST_RATE" "$OVERLOAD_SECS" >"$IT_WORK/blast.out" &
BLAST_PID=$!
IT_PIDS+=("$BLAST_PID")
wait "$OVER_PID" "$BLAST_PID"
T_END=$(now)
it_log "overload ran $(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.2f", b - a }')s"
it_pid_alive "$REFEREE_PID" && it_check "referee alive after the overload" || it_fail referee_alive "referee died (see $ERR)"

# ---- recovery: a fresh call from the overloading source, as soon as it succeeds ------------------
T_CALL=""
for i in $(seq 10); do
	IT_SIPP_SRC=127.0.0.3 sipp_uac_run "fresh$i" 1 10 3 "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234 2>/dev/null
	if [ "$SIPP_OK" = 1 ]; then T_CALL=$(now); break; fi
	awk -v a="$T_END" -v b="$(now)" 'BEGIN { exit !(b - a > 5) }' && break
done

wait "$LEGIT_PID"
python3 -c "import time; time.sleep(max(0.0, $T_END + 3.0 - time.time()))"
: >"$IT_WORK/health.stop"
wait "$HEALTH_PID"
scrape after

# ---- what happened -------------------------------------------------------------------------------
read -r b_sent b_got _ <"$IT_WORK/blast.out"
o_calls=$(sstat over 'OutgoingCall(C)') o_ok=$(sstat over 'SuccessfulCall(C)')
o_retrans=$(sstat over 'Retransmissions(C)')
it_log "overloading SIPp: $o_calls calls started in ${OVERLOAD_SECS}s ($OVER/s asked), $o_ok successful, $o_retrans retransmissions; blast: $b_sent sent, $b_got answered"
delta() { echo $(($(ops_metric_sum "$IT_WORK/after.prom" "$1") - $(ops_metric_sum "$IT_WORK/before.prom" "$1"))); }
drops=$(delta referee_flood_drops_total)
qdrops=$(delta referee_queue_drops_total)
rxdrops=$(delta referee_rx_drops_total)
it_log "referee: flood drops +$drops, queue drops +$qdrops, rx drops +$rxdrops"

# the overload was one: the requests referee received between the two scrapes (2 s before the
# load, 3 s after it), less the legitimate calls' 3 a call, over the load's duration, are at least
# 3x what the calibration sustained (3 requests a call); the health checks' 10/s are left in
reqs=$(delta referee_requests_total)
o_secs=$(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.2f", b - a }')
o_rate=$(awk -v n="$reqs" -v s="$o_secs" -v l="$LEGIT" 'BEGIN { printf "%d", (n - 3 * l) / s }')
[ "$o_rate" -ge $((3 * 3 * S)) ] &&
	it_check "offered above capacity ($o_rate requests/s for ${o_secs}s, 3x the sustained $((3 * S))/s is $((9 * S)); SIPp asked $OVER calls/s, started $o_calls)" ||
	it_fail offered_above_capacity "$o_rate requests/s over ${o_secs}s (want >= 3 x $((3 * S)))"
# the blaster may get its burst plus its rate over the blast (+1 s); the rest is dropped and counted,
# apart from datagrams lost before the limiter (kernel buffer, queue drops): hence "half"
allowed=$(awk -v r="$RATE" -v b="$BURST" -v s="$OVERLOAD_SECS" 'BEGIN { print int(b + r * (s + 1)) }')
[ "$drops" -gt 0 ] && [ "$drops" -ge $(((b_sent - allowed) / 2)) ] && [ "$b_got" -le "$allowed" ] &&
	it_check "drops counted (referee_flood_drops_total +$drops; blaster answered $b_got of $b_sent, at most $allowed)" ||
	it_fail drops_counted "flood drops +$drops, blaster answered $b_got of $b_sent (allowed $allowed)"

# health checker: probes sent during the overload; at most 1 % lost (a UDP datagram can be lost in a
# full socket buffer before referee sees it, and a checker takes a single miss), never two in a row
# (a checker marking referee down after 2 misses would never do it)
python3 - "$IT_WORK/health.out" "$T_START" "$T_END" >"$IT_WORK/health.sum" <<'EOF'
import statistics, sys
rows = sorted(tuple(float(x) for x in l.split()) for l in open(sys.argv[1]) if l.strip())
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
base = [r[2] for r in rows if r[0] < t0 - 1.0 and r[2] >= 0]
during = [r for r in rows if t0 <= r[0] <= t1]
lost = sum(1 for r in during if r[2] < 0)
run = worst = 0
for r in during:
    run = run + 1 if r[2] < 0 else 0
    worst = max(worst, run)
med = statistics.median(base) if base else -1
# back to normal: within 4x the baseline median or 10 ms of it (scheduler noise of a shared box)
normal = max(4 * med, med + 10.0)
after = [r for r in rows if r[0] > t1]
rec = -1
for i, r in enumerate(after):
    nxt = after[i:i + 3]
    if len(nxt) == 3 and all(0 <= x[2] <= normal for x in nxt):
        rec = r[1] - t1
        break
lat = sorted(r[2] for r in during if r[2] >= 0)
p99 = lat[int(0.99 * (len(lat) - 1))] if lat else -1
print(len(base), f"{med:.2f}", len(during), lost, worst, f"{p99:.1f}", f"{(lat[-1] if lat else -1):.1f}",
      f"{normal:.2f}", f"{rec:.2f}")
EOF
read -r h_base h_med h_n h_lost h_worst h_p99 h_max h_norm h_rec <"$IT_WORK/health.sum"
it_log "health: baseline $h_base probes, median ${h_med} ms; during: $h_n probes, $h_lost lost, p99 ${h_p99} ms, max ${h_max} ms"
[ "$h_base" -ge 10 ] || it_fail health_baseline "only $h_base baseline probes"
[ "$h_n" -ge $((OVERLOAD_SECS * 5)) ] && [ $((h_lost * 100)) -le "$h_n" ] && [ "$h_worst" -le 1 ] &&
	it_check "health checker answered during the overload ($((h_n - h_lost))/$h_n, p99 ${h_p99} ms, max ${h_max} ms)" ||
	it_fail health_answered "$h_lost of $h_n probes lost, $h_worst in a row (want <= 1 %, never 2 in a row, >= $((OVERLOAD_SECS * 5)) probes)"

# legitimate calls from 127.0.0.5: >= 99 % successful (all, below 100 calls)
SIPP_DIR=$IT_WORK/legit
l_ok=$(sstat legit 'SuccessfulCall(C)') l_failed=$(sstat legit 'FailedCall(C)')
[ "$(cat "$IT_WORK/legit.rc" 2>/dev/null)" = 0 ] || it_log "legit SIPp exit status not 0"
[ "$l_ok" != NA ] && [ $((l_ok * 100)) -ge $((LEGIT * 99)) ] &&
	it_check "legitimate calls from another source succeeded ($l_ok/$LEGIT, $l_failed failed)" ||
	it_fail legit_calls "$l_ok of $LEGIT successful, $l_failed failed (see $SIPP_DIR/)"

# recovery within 2 s of the end of the load: a fresh call from the overloading source, and OPTIONS
# latency back under the baseline bound (3 probes in a row)
c_rec=$( [ -n "$T_CALL" ] && awk -v a="$T_END" -v b="$T_CALL" 'BEGIN { printf "%.2f", b - a }' || echo -1)
it_log "recovery: fresh call from 127.0.0.3 ${c_rec}s after the load (attempt $i), OPTIONS under ${h_norm} ms ${h_rec}s after"
awk -v c="$c_rec" -v h="$h_rec" 'BEGIN { exit !(c >= 0 && c <= 2.0 && h >= 0 && h <= 2.0) }' &&
	it_check "recovered within 2 s (fresh call from the overloading source after ${c_rec}s, OPTIONS latency normal after ${h_rec}s)" ||
	it_fail recovery "fresh call after ${c_rec}s, OPTIONS normal after ${h_rec}s (want both 0..2 s; -1 = never)"

referee_stop_check 15
it_kill "$UAS_PID"
it_finish

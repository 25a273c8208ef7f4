#!/usr/bin/env bash
# test_metrics_prom.sh - referee's /metrics and /health (SPEC §8, STYLE §18) with real tools:
#   referee (metrics.listen on a free loopback port) behind a SIPp UAC/UAS pair; traffic:
#   OPTIONS pings, CALLS forwarded calls, a 403 Relaying Denied, a malformed request (400) and a
#   garbage datagram (counted drop). Then: `promtool check metrics` on the scrape (no parse error,
#   no lint complaint), the counters the traffic moved, the latency histogram (cumulative, counts
#   > 0), /health 200; a private Prometheus server scrapes referee every second and its HTTP API
#   must return the same values. Finally SIGTERM: /health never says 200 once it said 503, the
#   endpoint goes away, referee exits 0 (whether the 503 window was seen is logged: it lasts
#   only as long as the drain).
# Env: CALLS (default 20).
# it_check always returns 0, so "test && it_check ... || it_fail ..." is an if/else.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ops.sh"

CALLS=${CALLS:-20}
it_need sipp python3 ss timeout curl promtool prometheus
PORT=$(it_free_udp_port)
UAS_PORT=$(it_free_udp_port)
[ "$PORT" != "$UAS_PORT" ] || UAS_PORT=$(it_free_udp_port)
MPORT=$(ops_free_tcp_port)
MURL=http://127.0.0.1:$MPORT

sipp_uas_start uas "$UAS_PORT" "$IT_SIPP_DIR/uas.xml" 100
UAS_PID=$IT_LAST_PID
referee_config "$IT_WORK/referee.yaml" "$PORT" "$UAS_PORT" "$(cat <<EOF
trusted: []
rules:
  - {hosts: [example.com], users: ["255xxxx"], permissions: []}
metrics:
  listen: 127.0.0.1:$MPORT
EOF
)"
referee_start "$IT_WORK/referee.yaml" "$PORT"
ops_wait_http "$MURL/health" 200 10 && it_check "health_200_while_serving" ||
	it_fail health_200_while_serving "GET /health: $(ops_http_status "$MURL/health")"
code=$(ops_http_status "$MURL/nothing")
[ "$code" = 404 ] && it_check "unknown_path_404" || it_fail unknown_path_404 "GET /nothing: $code"

# ---- traffic --------------------------------------------------------------------------------
n_opt=0
for _ in 1 2 3; do
	r=$(ops_sip --port "$PORT" --method OPTIONS --ruri sip:example.com)
	[ "$r" = 200 ] && n_opt=$((n_opt + 1))
done
[ "$n_opt" = 3 ] && it_check "options_ping_200 (3)" || it_fail options_ping_200 "$n_opt of 3 answered 200"
r=$(ops_sip --port "$PORT" --ruri sip:1234@other.invalid --reason)
[ "$r" = "403 Relaying Denied" ] && it_check "relaying_denied_403" || it_fail relaying_denied_403 "got '$r'"
printf 'INVITE sip:2551234@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:@LPORT@;branch=z9hG4bKops400\r\nFrom: <sip:a@it.invalid>;tag=1\r\nTo: <sip:2551234@example.com>\r\nCall-ID: ops400\r\nCSeq: twelve INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n' >"$IT_WORK/bad_cseq.sip"
r=$(ops_sip --port "$PORT" --raw "$IT_WORK/bad_cseq.sip")
[ "$r" = 400 ] && it_check "malformed_cseq_400" || it_fail malformed_cseq_400 "got '$r'"
printf 'this is not SIP\r\n\r\n' >"$IT_WORK/garbage.bin"
r=$(ops_sip --port "$PORT" --raw "$IT_WORK/garbage.bin" --timeout 0.5)
[ "$r" = none ] && it_check "garbage_dropped_silently" || it_fail garbage_dropped_silently "got '$r'"
sipp_uac_run calls "$CALLS" 20 $((CALLS / 20 + 40)) "$PORT" "$IT_SIPP_DIR/uac_call.xml" -s 2551234
sipp_uac_expect calls_through_referee "$CALLS"

# ---- /metrics: promtool and the counters ------------------------------------------------------
M=$IT_WORK/metrics.txt
curl -s -m 5 -D "$IT_WORK/metrics.hdr" -o "$M" "$MURL/metrics"
if grep -qi '^Content-Type: text/plain; version=0.0.4' "$IT_WORK/metrics.hdr" && [ -s "$M" ]; then
	it_check "metrics_text_format_content_type"
else
	it_fail metrics_text_format_content_type "$(grep -i content-type "$IT_WORK/metrics.hdr")"
fi
promtool check metrics <"$M" >"$IT_WORK/promtool.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && [ ! -s "$IT_WORK/promtool.out" ]; then
	it_check "promtool_check_metrics_clean ($(grep -c '^# TYPE' "$M") families)"
else
	it_fail promtool_check_metrics_clean "exit $rc: $(head -c 600 "$IT_WORK/promtool.out")"
fi
procs=$(ops_metric "$M" process_open_fds)
rss=$(ops_metric "$M" process_resident_memory_bytes)
st=$(ops_metric "$M" process_start_time_seconds)
if [ "$procs" != NA ] && [ "$procs" -gt 3 ] && [ "$rss" != NA ] && [ "$rss" -gt 1000000 ] &&
	awk -v s="$st" -v now="$(date +%s)" 'BEGIN { exit !(s > now - 600 && s <= now + 1) }'; then
	it_check "process_metrics (open_fds $procs, rss $rss, started $(awk -v s="$st" -v now="$(date +%s)" 'BEGIN { printf "%.0f", now - s }')s ago)"
else
	it_fail process_metrics "open_fds=$procs rss=$rss start_time=$st now=$(date +%s)"
fi
bad=$(grep -E '^# TYPE ' "$M" | awk '$3 !~ /^referee_/ && $3 !~ /^process_/ { print $3 }')
[ -z "$bad" ] && it_check "metric_names_prefixed" || it_fail metric_names_prefixed "$bad"

# expect SERIES OP VALUE: compare a series of the scrape.
expect() {
	local v
	v=$(ops_metric "$M" "$1")
	if [ "$v" != NA ] && awk -v a="$v" -v b="$3" -v op="$2" 'BEGIN {
		exit !((op == "==" && a == b) || (op == ">=" && a >= b)) }'; then
		it_check "metric $1 $2 $3 (is $v)"
	else
		it_fail "metric $1 $2 $3" "is $v"
	fi
}
# a SIPp request may be retransmitted on a loaded machine (>=); single probes are exact
expect 'referee_requests_total{method="OPTIONS"}' == 3
expect 'referee_requests_total{method="INVITE"}' '>=' $((CALLS + 1))
expect 'referee_requests_total{method="BYE"}' '>=' "$CALLS"
expect 'referee_requests_total{method="ACK"}' '>=' "$CALLS"
expect 'referee_responses_sent_total{code="200"}' == 3
expect 'referee_responses_sent_total{code="400"}' == 1
expect 'referee_responses_sent_total{code="403"}' == 1
expect 'referee_rules_denials_total' == 1
expect 'referee_forwarded_total{direction="request"}' '>=' $((3 * CALLS))
expect 'referee_forwarded_total{direction="response"}' '>=' $((3 * CALLS))
expect 'referee_responses_received_total' '>=' $((3 * CALLS))
# the garbage datagram is one event, counted once (by the pipeline: it never parsed)
expect 'referee_rx_drops_total{reason="malformed"}' == 1
expect 'referee_drops_total{reason="malformed"}' == 0

# the histogram: buckets cumulative, +Inf == _count >= every message handled, _sum > 0
H=referee_request_duration_seconds
hist=$(awk -v h="$H" '
	index($1, h "_bucket{") == 1 { n++; if ($2 < prev) bad = 1; prev = $2; inf = $2 }
	$1 == h "_count" { cnt = $2 } $1 == h "_sum" { sum = $2 }
	END { printf "%d %d %s %s %s\n", n, bad, inf, cnt, sum }' "$M")
read -r nb bad inf cnt sum <<<"$hist"
handled=$(( $(ops_metric_sum "$M" referee_requests_total) ))
if [ "$nb" -ge 2 ] && [ "$bad" = 0 ] && [ "$inf" = "$cnt" ] && [ "$cnt" -ge "$handled" ] &&
	awk -v s="$sum" 'BEGIN { exit !(s > 0) }'; then
	it_check "latency_histogram ($nb buckets, count $cnt >= $handled requests, sum ${sum}s)"
else
	it_fail latency_histogram "buckets=$nb non-cumulative=$bad +Inf=$inf count=$cnt requests=$handled sum=$sum"
fi
code=$(ops_http_status "$MURL/health")
[ "$code" = 200 ] && it_check "health_200_after_traffic" || it_fail health_200_after_traffic "GET /health: $code"

# ---- a real Prometheus server scrapes it ------------------------------------------------------
ops_prom_start "127.0.0.1:$MPORT"
v=$(ops_prom_wait 'up{job="referee"}' 1 20)
[ "$v" = 1 ] && it_check "prometheus_scrape_up" || {
	it_fail prometheus_scrape_up "up=$v"
	tail -n 5 "$IT_WORK/prometheus.err"
}
v=$(ops_prom_wait 'referee_requests_total{job="referee",method="OPTIONS"}' 3 10)
[ "$v" = 3 ] && it_check "prometheus_api_requests_total_options (3)" ||
	it_fail prometheus_api_requests_total_options "query returned $v, want 3"
want=$(ops_metric "$M" 'referee_requests_total{method="INVITE"}')
v=$(ops_prom_wait 'referee_requests_total{method="INVITE"}' "$want" 10)
[ "$v" = "$want" ] && it_check "prometheus_api_requests_total_invite ($v)" ||
	it_fail prometheus_api_requests_total_invite "query returned $v, want $want"
v=$(ops_prom_wait "${H}_count" "$cnt" 10)
[ "$v" = "$cnt" ] && it_check "prometheus_api_histogram_count ($v)" ||
	it_fail prometheus_api_histogram_count "query returned $v, want $cnt"
q=$(ops_prom_query "histogram_quantile(0.5, sum by (le) (${H}_bucket))")
if awk -v q="$q" 'BEGIN { exit !(q + 0 > 0 && q + 0 <= 0.1) }'; then
	it_check "prometheus_histogram_quantile_p50 (${q}s)"
else
	it_fail prometheus_histogram_quantile_p50 "histogram_quantile returned $q"
fi
v=$(ops_prom_query 'count({job="referee",__name__=~"referee_.*"})')
[ "$v" != NA ] && [ "$v" -gt 50 ] && it_check "prometheus_ingested_series ($v)" ||
	it_fail prometheus_ingested_series "count of referee_* series: $v"
it_kill "$OPS_PROM_PID"

# ---- SIGTERM: /health while draining -------------------------------------------------------
python3 - "$MURL/health" >"$IT_WORK/health_drain.txt" 2>&1 <<'PYEOF' &
# poll /health as fast as possible for at most 8 s; print the run-length of what it answered
import sys, time, urllib.request, urllib.error
seq, end, gone = [], time.monotonic() + 8, 0
while time.monotonic() < end and gone < 20:
    try:
        c = str(urllib.request.urlopen(sys.argv[1], timeout=1).status)
    except urllib.error.HTTPError as e:
        c = str(e.code)
    except (ConnectionRefusedError, urllib.error.URLError) as e:
        refused = isinstance(e, ConnectionRefusedError) or isinstance(getattr(e, "reason", None), ConnectionRefusedError)
        c = "gone" if refused else "err"
    except Exception:
        c = "err"  # a timeout on a loaded machine: says nothing about the state
    gone = gone + 1 if c == "gone" else 0
    if not seq or seq[-1][0] != c:
        seq.append([c, 0])
    seq[-1][1] += 1
print(" ".join(f"{c}x{n}" for c, n in seq))
PYEOF
POLL_PID=$!
IT_PIDS+=("$POLL_PID")
sleep 0.5
referee_stop_check 10
wait "$POLL_PID"
seqs=$(tail -n 1 "$IT_WORK/health_drain.txt")
it_log "/health around SIGTERM: $seqs"
order=$(tr ' ' '\n' <<<"$seqs" | sed 's/x[0-9]*$//' | grep -vx err | uniq | tr '\n' ' ')
if [[ "$order" =~ ^(200\ )?(503\ )?(gone\ )$ ]]; then
	it_check "health_during_shutdown ($seqs)"
	[[ "$order" == *503* ]] || it_log "the drain was too short for the poller to see a 503 (documented)"
else
	it_fail health_during_shutdown "sequence '$seqs' (want 200*, 503*, then connection refused)"
fi
it_kill "$UAS_PID"
it_finish

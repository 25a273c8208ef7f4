#!/usr/bin/env bash
# test_ops_monitoring.sh - the alerting rules (packaging/prometheus/referee.rules.yml) and the
# Grafana dashboard (packaging/grafana/referee.json) against a real referee and Prometheus:
#   - `promtool check rules` and `promtool test rules referee.rules.test.yml` (series in,
#     alerts out); the unit tests must FAIL on a copy of the rules with one threshold changed
#     (they can catch a wrong rule);
#   - the dashboard is valid JSON whose every panel has Prometheus targets;
#   - every metric name that the rules and the dashboard use is exported by a running
#     referee's /metrics (# TYPE lines, present from start for every family; histogram
#     series through _bucket/_sum/_count), scraped right after start and again after traffic;
#   - a private Prometheus scrapes that referee (Redis backend, so the referee_store_redis_*
#     families exist) with the rules loaded: every rule evaluates with health "ok",
#     RefereeDown and RefereeRedisUnreachable are not firing, and every dashboard query (with
#     $__rate_interval = 1m, $instance = .*) is valid PromQL that the server evaluates.
# shellcheck disable=SC2015
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_ops.sh"
. "$(dirname "$0")/lib_auth.sh"
. "$(dirname "$0")/lib_stream.sh"

it_need promtool prometheus python3 curl ss redis-server redis-cli
P=$REFEREE_SOURCE_DIR/packaging
RULES=$P/prometheus/referee.rules.yml
DASH=$P/grafana/referee.json

out=$(promtool check rules "$RULES" 2>&1)
rc=$?
NRULES=$(echo "$out" | sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p')
[ "$rc" = 0 ] && it_check "promtool_check_rules ($(echo "$out" | grep -o '[0-9]* rules found'))" || it_fail promtool_check_rules "$out"
out=$(cd "$P/prometheus" && promtool test rules referee.rules.test.yml 2>&1)
rc=$?
[ "$rc" = 0 ] && it_check "promtool_test_rules (referee.rules.test.yml)" || it_fail promtool_test_rules "$out"
# the unit tests catch a wrong threshold
mkdir -p "$IT_WORK/mut"
sed 's/event=~"unavailable|overload"/event=~"overload"/' "$RULES" >"$IT_WORK/mut/referee.rules.yml"
cp "$P/prometheus/referee.rules.test.yml" "$IT_WORK/mut/"
cmp -s "$RULES" "$IT_WORK/mut/referee.rules.yml" && it_die "the mutation did not change the rules"
(cd "$IT_WORK/mut" && promtool test rules referee.rules.test.yml) >/dev/null 2>&1 &&
	it_fail promtool_tests_catch_a_wrong_rule "a rule that ignores 'unavailable' passed the tests" ||
	it_check promtool_tests_catch_a_wrong_rule

# ---- the names the rules and the dashboard use ---------------------------------------------
python3 - "$RULES" "$DASH" >"$IT_WORK/used.txt" 2>"$IT_WORK/used.err" <<'PY'
import json, re, sys
names, exprs = set(), []
rules_text = open(sys.argv[1]).read()
for m in re.finditer(r"^\s+expr: (\|\n(?:\s{10,}.*\n)+|.*)$", rules_text, re.M):
    exprs.append(m.group(1))
dash = json.load(open(sys.argv[2]))
assert dash.get("panels"), "no panels"
for p in dash["panels"]:
    t = p.get("targets") or []
    assert t and all(x.get("expr") for x in t), "panel %r has no Prometheus targets" % p.get("title")
    exprs += [x["expr"] for x in t]
for e in exprs:
    e = re.sub(r'"[^"]*"', '""', e)  # label values are not names
    names |= set(re.findall(r"\b((?:referee|process)_[a-z0-9_]+)\b", e))
for n in sorted(names):
    print(n)
print("EXPRS", json.dumps([x["expr"] for p in dash["panels"] for x in p["targets"]]), file=sys.stderr)
PY
[ -s "$IT_WORK/used.txt" ] && it_check "dashboard_json_valid ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["panels"]))' "$DASH") panels, $(wc -l <"$IT_WORK/used.txt") metric names used)" ||
	it_fail dashboard_json_valid "$(cat "$IT_WORK/used.err")"

PORT=$(it_free_udp_port)
SINK=$(it_free_udp_port)
MPORT=$(ops_free_tcp_port)
# the Redis backend: its families (referee_store_redis_*) exist only with it
authit_redis_start redis
# a tls:// listener: the stream families (referee_tls_handshake_failures_total among them) exist
# only where a tcp:// or tls:// transport is in use; referee_route_up needs only routes.local
TPORT=$(ops_free_tcp_port)
stream_certs "$IT_WORK/certs"
referee_config "$IT_WORK/referee.yaml" "$PORT" "$SINK" "metrics: {listen: 127.0.0.1:$MPORT}
tls: {certificate: $IT_WORK/certs/server.pem, private_key: $IT_WORK/certs/server.key}"
sed -i "s#^  backend: file#  backend: redis#; s#^  file: .*#  redis: redis://127.0.0.1:$AUTHIT_RPORT/0#" "$IT_WORK/referee.yaml"
sed -i "s|^listen: .*|listen: [udp://127.0.0.1:$PORT, tls://127.0.0.1:$TPORT]|" "$IT_WORK/referee.yaml"
referee_start "$IT_WORK/referee.yaml" "$PORT"
ops_wait_http "http://127.0.0.1:$MPORT/health" 200 20 || it_die "/health never answered 200"
# missing FILE: used names that FILE (a scrape) does not export
missing() {
	local n base miss=""
	while read -r n; do
		base=$n
		for s in _bucket _sum _count; do
			[[ "$n" == *"$s" ]] && grep -q "^# TYPE ${n%"$s"} histogram" "$1" && base=${n%"$s"}
		done
		grep -q "^# TYPE $base " "$1" || miss="$miss $n"
	done <"$IT_WORK/used.txt"
	echo "$miss"
}
curl -s -m 3 -o "$IT_WORK/start.txt" "http://127.0.0.1:$MPORT/metrics"
m=$(missing "$IT_WORK/start.txt")
[ -z "$m" ] && it_check "every_used_metric_exported_at_start ($(grep -c '^# TYPE' "$IT_WORK/start.txt") families)" ||
	it_fail every_used_metric_exported_at_start "not in /metrics:$m"
for _ in 1 2 3; do ops_sip --port "$PORT" --method OPTIONS --ruri sip:example.com >/dev/null; done
ops_sip --port "$PORT" --ruri sip:2551234@example.com --sink "$SINK" >/dev/null
curl -s -m 3 -o "$IT_WORK/after.txt" "http://127.0.0.1:$MPORT/metrics"
m=$(missing "$IT_WORK/after.txt")
[ -z "$m" ] && grep -q '^referee_request_duration_seconds_bucket{' "$IT_WORK/after.txt" &&
	it_check "every_used_metric_exported_after_traffic" || it_fail every_used_metric_exported_after_traffic "not in /metrics:$m"

# ---- a real Prometheus with the rules, and the dashboard's queries -------------------------
ops_prom_start "127.0.0.1:$MPORT" "$RULES"
v=$(ops_prom_wait 'up{job="referee"}' 1 20)
[ "$v" = 1 ] || it_die "Prometheus did not scrape referee (up=$v)"
rules_state() {
	curl -s -m 3 "$OPS_PROM_URL/api/v1/rules" | python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["groups"]
rules = [x for g in r for x in g["rules"]]
bad = [x["name"] + ":" + x.get("health", "?") + ":" + x.get("lastError", "") for x in rules if x.get("health") != "ok"]
firing = [x["name"] for x in rules if x.get("state") == "firing"]
print(len(rules), "bad=" + ",".join(bad), "firing=" + ",".join(firing))'
}
st=""
for _ in $(seq 30); do
	st=$(rules_state 2>/dev/null)
	[[ "$st" == "$NRULES bad= "* ]] && break
	sleep 0.5
done
[[ "$st" == "$NRULES bad= firing="* ]] && [[ "$st" != *RefereeDown* ]] && [[ "$st" != *RefereeRedisUnreachable* ]] && it_check "prometheus_evaluates_rules ($st)" ||
	it_fail prometheus_evaluates_rules "$st"
bad=$(sed -n 's/^EXPRS //p' "$IT_WORK/used.err" | python3 -c '
import json, sys, urllib.parse, urllib.request
url = sys.argv[1]
bad = []
for e in json.load(sys.stdin):
    q = e.replace("$__rate_interval", "1m").replace("$instance", ".*")
    try:
        r = json.load(urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=5))
        if r.get("status") != "success":
            bad.append(q + ": " + r.get("error", "?"))
    except Exception as x:
        bad.append(q + ": " + str(getattr(x, "read", lambda: str(x).encode())().decode()))
print(" | ".join(bad))' "$OPS_PROM_URL")
[ -z "$bad" ] && it_check "dashboard_queries_valid_promql ($(sed -n 's/^EXPRS //p' "$IT_WORK/used.err" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') queries)" ||
	it_fail dashboard_queries_valid_promql "$bad"
v=$(ops_prom_query 'sum(referee_requests_total{job="referee",method="OPTIONS"})')
[ "$v" = 3 ] && it_check "dashboard_series_have_data (OPTIONS requests $v)" || it_fail dashboard_series_have_data "OPTIONS requests '$v'"
referee_stop_check 10
it_finish

# report.awk - Markdown tables from the summary.tsv written by bench/lib/load.sh (header line
# LOAD_TSV_HEADER, then one line per run). Per scenario, offered rate and proxy (mean over the
# repetitions): CPU µs per call (schedstat), backend (Redis) CPU µs per call, the ratio referee /
# Kamailio at that rate, p50/p99 latency (SIPp rtt, ms); then per scenario and proxy the highest
# offered rate whose runs all PASSed (< 0.1 % failed or unfinished calls and >= 95 % of the offered
# rate achieved) and the first rate that did not. Not a judge of noise: see the "other load" column.
# usage: awk -f report.awk summary.tsv
BEGIN { FS = "\t" }
$1 == "time_utc" { for (i = 1; i <= NF; i++) h[$i] = i; next }
{
	sc = $h["scenario"]; px = $h["proxy"]; r = $h["rate"] + 0
	k = sc SUBSEP r SUBSEP px
	if (!(sc in seens)) { seens[sc] = 1; scens[++ns] = sc }
	if (!((sc SUBSEP r) in seenr)) { seenr[sc SUBSEP r] = 1; rates[sc] = rates[sc] " " r }
	if (!((sc SUBSEP px) in seenp)) { seenp[sc SUBSEP px] = 1; proxies[sc] = proxies[sc] " " px }
	n[k]++
	if ($h["proxy_us_call_sched"] != "NA") { cpu[k] += $h["proxy_us_call_sched"]; ncpu[k]++ }
	ach[k] += $h["achieved_cps"]; cl[k] = $h["clients"]
	if ($h["backend_us_call"] != "-" && $h["backend_us_call"] != "NA") { be[k] += $h["backend_us_call"]; nbe[k]++ }
	f = $h["fail_pct"] + 0; if (!(k in fail) || f > fail[k]) fail[k] = f
	v = $h["verdict"]
	if (!(k in verd) || v == "FAIL" || (v == "SLOW" && verd[k] == "PASS")) verd[k] = v
	o = $h["others_cpu_pct"] + 0; if (o > oth[k]) oth[k] = o
	if ($h["lat_p50_ms"] != "NA") { p50[k] += $h["lat_p50_ms"]; p99[k] += $h["lat_p99_ms"]; nl[k]++ }
}
function ms(x) { return x < 0.5 ? "<1" : sprintf("%.0f", x) }
function sortnum(list, arr,   m, a, b, v) {
	m = split(list, arr, " ")
	for (a = 2; a <= m; a++) { v = arr[a] + 0; b = a - 1; while (b >= 1 && arr[b] + 0 > v) { arr[b + 1] = arr[b]; b-- } arr[b + 1] = v }
	return m
}
function mean_cpu(k) { return (k in ncpu) ? cpu[k] / ncpu[k] : 0 }
function cpu_str(k) { return (k in ncpu) ? sprintf("%.1f", mean_cpu(k)) : "–" }
function mean_be(k) { return (k in nbe) ? be[k] / nbe[k] : 0 }
END {
	print "| scenario | offered cps | proxy | SIPp clients | achieved cps | failed % | verdict | CPU µs/call | Redis µs/call | ratio referee/Kamailio | latency p50 / p99 ms | other load % |"
	print "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"
	for (s = 1; s <= ns; s++) {
		sc = scens[s]; nr = sortnum(rates[sc], rl); np = split(proxies[sc], pl, " ")
		for (i = 1; i <= nr; i++) {
			kr = sc SUBSEP rl[i] SUBSEP "referee"; kk = sc SUBSEP rl[i] SUBSEP "kamailio"
			ratio = "–"
			if ((kr in ncpu) && (kk in ncpu) && mean_cpu(kk) > 0) {
				ratio = sprintf("%.2f", mean_cpu(kr) / mean_cpu(kk))
				if ((kr in nbe) && (kk in nbe) && mean_cpu(kk) + mean_be(kk) > 0)
					ratio = ratio sprintf(" (%.2f with Redis)", (mean_cpu(kr) + mean_be(kr)) / (mean_cpu(kk) + mean_be(kk)))
			}
			for (j = 1; j <= np; j++) {
				k = sc SUBSEP rl[i] SUBSEP pl[j]
				if (!(k in n)) continue
				printf "| %s | %d | %s | %d | %.0f | %.3f | %s | %s | %s | %s | %s | %.1f |\n", sc, rl[i], pl[j], cl[k],
					ach[k] / n[k], fail[k], verd[k], cpu_str(k), (k in nbe) ? sprintf("%.1f", mean_be(k)) : "–",
					pl[j] == "referee" ? ratio : "", (k in nl) ? ms(p50[k] / nl[k]) " / " ms(p99[k] / nl[k]) : "–", oth[k]
			}
		}
	}
	print ""
	print "| scenario | proxy | highest offered cps passing (< 0.1 % failed, ≥ 95 % achieved) | CPU µs/call there | first rate not passing |"
	print "|---|---|---:|---:|---|"
	for (s = 1; s <= ns; s++) {
		sc = scens[s]; nr = sortnum(rates[sc], rl); np = split(proxies[sc], pl, " ")
		for (j = 1; j <= np; j++) {
			best = ""; bad = ""; tried = 0
			for (i = 1; i <= nr; i++) {
				k = sc SUBSEP rl[i] SUBSEP pl[j]
				if (!(k in n)) continue
				tried = rl[i]
				if (verd[k] != "PASS") { bad = k; break }
				best = rl[i]; bk = k
			}
			if (best == "") bs = "none of the rates tried"
			else bs = (bad == "" ? "≥ " : "") best (bad == "" ? " (highest tried)" : "")
			if (bad == "") fs = "–"
			else { split(bad, kb, SUBSEP); fs = sprintf("%d (%s: %.3f %% failed, %.0f cps achieved)", kb[2], verd[bad], fail[bad], ach[bad] / n[bad]) }
			printf "| %s | %s | %s | %s | %s |\n", sc, pl[j], bs, best == "" ? "–" : cpu_str(bk), fs
		}
	}
}

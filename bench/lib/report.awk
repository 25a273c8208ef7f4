# report.awk - Markdown tables from the summary.tsv written by bench/lib/load.sh (header line
# LOAD_TSV_HEADER, then one line per run). Per scenario, offered rate and system (mean over the
# repetitions): CPU µs per call (schedstat), backend (Redis) CPU µs per call, the floor per call
# (udp_null's CPU per OPTIONS x per_call, the datagram pairs of one call; for call also the relaying
# floor, bench/udp_relay relaying the same call with no work), the ratios referee /
# Kamailio and proxy / floor at that rate, context switches per call, p50/p99 latency (SIPp rtt, ms);
# then the issue 9 targets per scenario and rate (met, or missed by how much); then per scenario and
# proxy the highest offered rate whose runs all PASSed (< 0.1 % failed or unfinished calls and >= 95 %
# of the offered rate achieved) and the first rate that did not. Not a judge of noise: see the
# "other load" column.
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
	pc[k] = ("per_call" in h) ? $h["per_call"] + 0 : 1; if (pc[k] <= 0) pc[k] = 1
	if (("cs_per_call" in h) && $h["cs_per_call"] != "NA" && $h["cs_per_call"] != "") { cs[k] += $h["cs_per_call"]; ncs[k]++ }
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
# per call: a floor row's CPU is per OPTIONS, per_call of them make one call of its scenario
function per_call_cpu(k) { return mean_cpu(k) * pc[k] }
function floor_of(sc, r,   ku) { ku = sc SUBSEP r SUBSEP "udp_null"; return (ku in ncpu) ? per_call_cpu(ku) : 0 }
# the relaying floor (bench/udp_relay, call only): the same call relayed with no work of its own
function relay_of(sc, r,   ku) { ku = sc SUBSEP r SUBSEP "udp_relay"; return (ku in ncpu) ? mean_cpu(ku) : 0 }
function p99_of(k) { return (k in nl) ? p99[k] / nl[k] : -1 }
function pct_over(x, lim) { return sprintf("%.0f %%", 100 * (x / lim - 1)) }
END {
	print "| scenario | offered cps | system | SIPp clients | achieved cps | failed % | verdict | CPU µs/call | Redis µs/call | floor µs/call | ratio to floor | ratio referee/Kamailio | cs/call | latency p50 / p99 ms | other load % |"
	print "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for (s = 1; s <= ns; s++) {
		sc = scens[s]; nr = sortnum(rates[sc], rl); np = split(proxies[sc], pl, " ")
		for (i = 1; i <= nr; i++) {
			kr = sc SUBSEP rl[i] SUBSEP "referee"; kk = sc SUBSEP rl[i] SUBSEP "kamailio"
			fl = floor_of(sc, rl[i])
			ratio = "–"
			if ((kr in ncpu) && (kk in ncpu) && mean_cpu(kk) > 0) {
				ratio = sprintf("%.2f", mean_cpu(kr) / mean_cpu(kk))
				if ((kr in nbe) && (kk in nbe) && mean_cpu(kk) + mean_be(kk) > 0)
					ratio = ratio sprintf(" (%.2f with Redis)", (mean_cpu(kr) + mean_be(kr)) / (mean_cpu(kk) + mean_be(kk)))
			}
			for (j = 1; j <= np; j++) {
				k = sc SUBSEP rl[i] SUBSEP pl[j]
				if (!(k in n)) continue
				floor_cell = fl > 0 ? sprintf("%.1f", fl) : "–"
				rf = (pl[j] != "udp_null" && fl > 0 && (k in ncpu)) ? sprintf("%.2f", mean_cpu(k) / fl) : "–"
				rl_cpu = relay_of(sc, rl[i])
				if (pl[j] != "udp_null" && pl[j] != "udp_relay" && rl_cpu > 0 && (k in ncpu))
					rf = rf sprintf(" (%.2f× relay)", mean_cpu(k) / rl_cpu)
				sysname = pl[j] == "udp_null" ? sprintf("udp_null (%g OPTIONS per call)", pc[k]) : \
					pl[j] == "udp_relay" ? "udp_relay (relaying floor)" : pl[j]
				printf "| %s | %d | %s | %d | %.0f | %.3f | %s | %s | %s | %s | %s | %s | %s | %s | %.1f |\n", sc, rl[i], sysname, cl[k],
					ach[k] / n[k], fail[k], verd[k], (k in ncpu) ? sprintf("%.1f", per_call_cpu(k)) : "–",
					(k in nbe) ? sprintf("%.1f", mean_be(k)) : "–", floor_cell, rf,
					pl[j] == "referee" ? ratio : "", (k in ncs) ? sprintf("%.1f", cs[k] / ncs[k] * pc[k]) : "–",
					(k in nl) ? ms(p50[k] / nl[k]) " / " ms(p99[k] / nl[k]) : "–", oth[k]
			}
		}
	}
	print ""
	print "Issue 9 targets for referee as shipped (OPTIONS ≤ 1.2× the floor at 10 000/s and above, relayed call ≤ 1.5× the"
	print "floor at 2 000 cps and above, every scenario ≤ 0.5× Kamailio's CPU per call, p99 no worse than Kamailio's,"
	print "no failed calls):"
	print ""
	print "| scenario | offered cps | vs floor | vs Kamailio (≤ 0.50) | p99 vs Kamailio | failed calls |"
	print "|---|---:|---|---|---|---|"
	for (s = 1; s <= ns; s++) {
		sc = scens[s]; nr = sortnum(rates[sc], rl)
		for (i = 1; i <= nr; i++) {
			kr = sc SUBSEP rl[i] SUBSEP "referee"; kk = sc SUBSEP rl[i] SUBSEP "kamailio"
			if (!(kr in ncpu)) continue
			fl = floor_of(sc, rl[i]); cr = mean_cpu(kr)
			lim = (sc == "options" && rl[i] >= 10000) ? 1.2 : (sc == "call" && rl[i] >= 2000) ? 1.5 : 0
			if (lim == 0) tf = "–"
			else if (fl <= 0) tf = "no floor measured"
			else if (cr / fl <= lim) tf = sprintf("met: %.2f× ≤ %.1f×", cr / fl, lim)
			else tf = sprintf("**missed** by %s: %.2f× > %.1f×", pct_over(cr / fl, lim), cr / fl, lim)
			if (lim > 0 && relay_of(sc, rl[i]) > 0)
				tf = tf sprintf("; %.2f× the relaying floor, itself %.2f× udp_null's", cr / relay_of(sc, rl[i]),
					fl > 0 ? relay_of(sc, rl[i]) / fl : 0)
			if (!(kk in ncpu) || mean_cpu(kk) <= 0) tk = "–"
			else if (cr / mean_cpu(kk) <= 0.5) tk = sprintf("met: %.2f", cr / mean_cpu(kk))
			else tk = sprintf("**missed** by %s: %.2f", pct_over(cr / mean_cpu(kk), 0.5), cr / mean_cpu(kk))
			pr = p99_of(kr); pk = p99_of(kk)
			if (pr < 0 || pk < 0) tp = "–"
			else if (pr <= pk) tp = sprintf("met: %s ≤ %s ms", ms(pr), ms(pk))
			else tp = sprintf("**missed**: %s > %s ms", ms(pr), ms(pk))
			tfail = fail[kr] == 0 ? "met: none" : sprintf("**missed**: %.3f %%", fail[kr])
			printf "| %s | %d | %s | %s | %s | %s |\n", sc, rl[i], tf, tk, tp, tfail
		}
	}
	print ""
	print "| scenario | proxy | highest offered cps passing (< 0.1 % failed, ≥ 95 % achieved) | CPU µs/call there | first rate not passing |"
	print "|---|---|---:|---:|---|"
	for (s = 1; s <= ns; s++) {
		sc = scens[s]; nr = sortnum(rates[sc], rl); np = split(proxies[sc], pl, " ")
		for (j = 1; j <= np; j++) {
			if (pl[j] == "udp_null" || pl[j] == "udp_relay") continue
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

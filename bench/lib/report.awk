# report.awk - Markdown tables from the summary.tsv files written by the bench reference's
# run_bench.sh (one header line per file, then one line per run; label NAME_SCEN_rRATE_dDUR).
# Prints per scenario and rate: each proxy's CPU per call (utime+stime from /proc/PID/stat,
# mean over repetitions), the ratio referee/Kamailio, and per scenario and proxy the highest
# offered rate at which < 0.1 % of the calls failed (or did not finish).
# usage: awk -F'\t' -f report.awk results/ab_*/summary.tsv
BEGIN { FS = "\t" }
$1 == "time_utc" { for (i = 1; i <= NF; i++) h[$i] = i; next }
{
	lab = $h["label"]; sub(/_r[0-9]+_d[0-9]+$/, "", lab); sub(/\.xml$/, "", lab)
	scen = lab; sub(/^.*_/, "", scen)
	name = lab; sub(/_[^_]*$/, "", name)
	rate = $h["rate"] + 0
	k = scen SUBSEP rate SUBSEP name
	if (!(k in n)) { keys[++nk] = k }
	if (!((scen SUBSEP rate) in seenr)) { seenr[scen SUBSEP rate] = 1; rates[scen] = rates[scen] " " rate }
	if (!(scen in seens)) { seens[scen] = 1; scens[++ns] = scen }
	if (!((scen SUBSEP name) in seenn)) { seenn[scen SUBSEP name] = 1; names[scen] = names[scen] " " name }
	n[k]++
	cpu[k] += $h["proxy_us_call_stat"]; cpus[k] += $h["proxy_us_call_sched"]
	ach[k] += $h["achieved_cps"]
	f = $h["fail_pct"] + 0; if (f > fail[k]) fail[k] = f
	v = $h["verdict"]; if (!(k in verd) || v != "PASS") verd[k] = v
	o = $h["others_cpu_pct"] + 0; if (o > oth[k]) oth[k] = o
}
function is_ref(nm) { return nm ~ /^referee/ }
function is_kam(nm) { return nm ~ /^kamailio/ }
END {
	print "| scenario | offered cps | proxy | achieved cps | failed % | CPU µs/call (stat) | CPU µs/call (schedstat) | ratio referee/Kamailio | verdict | other load % |"
	print "|---|---:|---|---:|---:|---:|---:|---:|---|---:|"
	for (s = 1; s <= ns; s++) {
		sc = scens[s]; nr = split(rates[sc], rl, " "); nn = split(names[sc], nl, " ")
		for (r = 1; r <= nr; r++) {
			kr = ""; kk = ""
			for (j = 1; j <= nn; j++) {
				k = sc SUBSEP rl[r] SUBSEP nl[j]
				if (!(k in n)) continue
				if (is_ref(nl[j])) kr = k
				if (is_kam(nl[j])) kk = k
			}
			ratio = (kr != "" && kk != "" && cpu[kk] > 0) ? sprintf("%.2f", (cpu[kr] / n[kr]) / (cpu[kk] / n[kk])) : "–"
			for (j = 1; j <= nn; j++) {
				k = sc SUBSEP rl[r] SUBSEP nl[j]
				if (!(k in n)) continue
				printf "| %s | %d | %s | %.0f | %.3f | %.1f | %.1f | %s | %s | %.1f |\n", sc, rl[r], nl[j], ach[k] / n[k], fail[k],
					cpu[k] / n[k], cpus[k] / n[k], is_ref(nl[j]) ? ratio : "", verd[k], oth[k]
				if (fail[k] < 0.1 && verd[k] != "FAIL" && rl[r] + 0 > best[sc SUBSEP nl[j]] + 0) {
					best[sc SUBSEP nl[j]] = rl[r]; bestv[sc SUBSEP nl[j]] = verd[k]; bestc[sc SUBSEP nl[j]] = cpu[k] / n[k]
				}
			}
		}
	}
	print ""
	print "| scenario | proxy | highest offered cps with < 0.1 % failed calls | verdict there | CPU µs/call there |"
	print "|---|---|---:|---|---:|"
	for (s = 1; s <= ns; s++) {
		sc = scens[s]; nn = split(names[sc], nl, " ")
		for (j = 1; j <= nn; j++) {
			b = sc SUBSEP nl[j]
			nr = split(rates[sc], rl, " "); top = 0
			for (r = 1; r <= nr; r++) if (rl[r] + 0 > top) top = rl[r] + 0
			if (b in best) printf "| %s | %s | %s%d%s | %s | %.1f |\n", sc, nl[j], best[b] == top ? "≥ " : "", best[b],
				best[b] == top ? " (highest rate tried)" : "", bestv[b], bestc[b]
			else printf "| %s | %s | none of the rates tried | – | – |\n", sc, nl[j]
		}
	}
}

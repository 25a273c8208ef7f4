#!/usr/bin/env bash
# plot.sh - PNG plot of proxy CPU per call against offered rate from a bench/run.sh summary.tsv:
# one line per system per scenario (colour = scenario, solid = referee, dashed = Kamailio, dotted =
# the udp_null floor per call), log-log
# axes (CPU per call falls with the rate, and OPTIONS and calls differ by 10x). Each point is the
# mean over the repetitions at that rate (schedstat CPU); runs that did not PASS are drawn as open
# points. Not a report by itself: the numbers are in report.md beside it.
#
# usage: bench/plot.sh SUMMARY_TSV OUT_PNG        (gnuplot from gnuplot-nox, install-deps.sh --bench)
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
TSV=$1 OUT=$2
[ -s "$TSV" ] || { echo "plot.sh: no data in $TSV" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not installed (packaging/install-deps.sh --bench)" >&2; exit 1; }
head -n 1 "$TSV" | grep -q $'^time_utc\tlabel\tproxy\tscenario' || { echo "plot.sh: $TSV is not a bench/run.sh summary.tsv" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/referee-plot.XXXXXX")
trap 'rm -rf "$work"' EXIT

# data blocks (gnuplot "index"), one per scenario/proxy: rate, mean CPU, 1 if every run PASSed;
# and the plot clauses that draw them
awk -F'\t' -v dat="$work/cpu.dat" -v cmds="$work/series.gp" '
NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
$h["proxy_us_call_sched"] == "NA" { next }   # no successful call: no CPU per call
{
	s = $h["scenario"] SUBSEP $h["proxy"]; r = $h["rate"] + 0; k = s SUBSEP r
	if (!(s in seen)) { seen[s] = 1; order[++ns] = s; sc = $h["scenario"]; if (!(sc in col)) col[sc] = ++nc }
	if (!(k in n)) rates[s] = rates[s] " " r
	m = ("per_call" in h) ? $h["per_call"] + 0 : 1; if (m <= 0) m = 1   # udp_null: per OPTIONS -> per call
	n[k]++; cpu[k] += $h["proxy_us_call_sched"] * m; if ($h["verdict"] != "PASS") bad[k] = 1
	if (!xmin || r < xmin) xmin = r; if (r > xmax) xmax = r
}
END {
	split("#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #17becf", pal, " ")
	for (i = 1; i <= ns; i++) {
		split(order[i], p, SUBSEP); m = split(rates[order[i]], rl, " ")
		for (a = 2; a <= m; a++) { v = rl[a] + 0; b = a - 1; while (b >= 1 && rl[b] + 0 > v) { rl[b + 1] = rl[b]; b-- } rl[b + 1] = v }
		printf "# %s %s\n", p[1], p[2] > dat
		for (a = 1; a <= m; a++) { k = order[i] SUBSEP rl[a]; printf "%d %.2f %d\n", rl[a], cpu[k] / n[k], (k in bad) ? 0 : 1 > dat }
		printf "\n\n" > dat
		c = pal[(col[p[1]] - 1) % 8 + 1]; dt = (p[2] == "referee") ? 1 : (p[2] == "udp_null") ? 3 : 2
		printf "%s\"%s\" index %d using 1:2 with lines lw 2 dt %d lc rgb \"%s\" title \"%s %s\", \"\" index %d using 1:($3 > 0 ? $2 : 1/0) with points pt 7 ps 1.2 lc rgb \"%s\" notitle, \"\" index %d using 1:($3 > 0 ? 1/0 : $2) with points pt 6 ps 1.4 lc rgb \"%s\" notitle", \
			(i > 1 ? ", \\\n  " : ""), dat, i - 1, dt, c, p[1], p[2], i - 1, c, i - 1, c > cmds
	}
	printf "\n" > cmds
	printf "set xrange [%g:%g]\n", xmin / 1.4, xmax * 1.4 > (cmds ".range")
	for (k in n) { c = cpu[k] / n[k]; if (!ymin || c < ymin) ymin = c; if (c > ymax) ymax = c }
	printf "set yrange [%g:%g]\n", (ymin > 0 ? ymin : 1) / 1.4, (ymax > 0 ? ymax : 10) * 1.4 > (cmds ".range")
}' "$TSV"

{
	echo "set terminal pngcairo size 1100,700 font 'DejaVu Sans,11'"
	echo "set output '$OUT'"
	echo "set title 'Proxy CPU per call vs offered rate (filled: PASS, open: not PASS)'"
	echo "set xlabel 'offered rate (calls/s, log)'"
	echo "set ylabel 'proxy CPU per call (µs, log)'"
	echo "set logscale xy"
	echo "set grid xtics ytics mxtics mytics"
	echo "set key outside right top"
	echo "set format x '%g'"
	cat "$work/series.gp.range"
	printf 'plot '
	cat "$work/series.gp"
} >"$work/plot.gp"
gnuplot "$work/plot.gp"
echo "plot: $OUT"

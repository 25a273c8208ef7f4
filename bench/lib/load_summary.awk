# load_summary.awk - the figures of one load run (bench/lib/load.sh, load_run), computed as the
# bench reference's run_bench.sh computes them, from variables passed with -v (no input file):
# CPU samples before/after (proxy, backend, sink), the clients' merged SIPp counters, the SIPp
# clients' own CPU (`time`), foreign ticks, UDP error deltas and the latency figures "n mean p50
# p99 max". Prints summary.txt lines, then one "TSV\t..." line in LOAD_TSV_HEADER's column order.
function us_per(cpu_s) { return succ > 0 ? sprintf("%.1f", cpu_s * 1e6 / succ) : "NA" }
BEGIN {
	wall = t1 - t0
	unfinished = calls - succ - fail; if (unfinished < 0) unfinished = 0
	failpct = calls > 0 ? 100.0 * (fail + unfinished) / calls : 0
	p_stat = (pt1 - pt0) / hz; p_ns = (pn1 - pn0) / 1e9
	e_stat = (et1 - et0) / hz; e_ns = (en1 - en0) / 1e9
	s_ns = (sn1 - sn0) / 1e9
	# PASS: failures + unfinished < 0.1 %, no client killed by its timeout, and the offered rate
	# sustained (achieved >= 95 % of offered); SLOW: no failures but not sustained; FAIL otherwise
	verdict = (failpct < 0.1 && killed == 0) ? "PASS" : "FAIL"
	if (verdict == "PASS" && (ach == "NA" || ach + 0 < 0.95 * rate)) verdict = "SLOW"
	# utilisation over the load period (calls / generated rate), else over the wall time
	lp = (gen != "NA" && gen > 0) ? calls / gen : wall; if (lp > wall || lp <= 0) lp = wall
	p_util = lp > 0 ? 100 * p_ns / lp : 0
	box = lp > 0 ? 100 * (p_ns + e_ns + s_ns + uac) / (lp * ncpu) : 0
	others = wall > 0 ? 100 * (oticks / hz) / (wall * ncpu) : 0
	idle_rate = it1 > it0 ? ((in1 - in0) / 1e9) / (it1 - it0) : 0
	p_net = p_ns - idle_rate * wall; if (p_net < 0) p_net = 0
	e_us = extra != "" ? us_per(e_ns) : "-"
	s_us = sink != "" ? us_per(s_ns) : "-"
	split(lat, L, " ")
	printf "label              %s\n", label
	printf "offered            %d calls at %d cps from %d SIPp client(s)\n", calls, rate, n
	printf "successful_calls   %d\n", succ
	printf "failed_calls       %d\n", fail
	printf "unfinished_calls   %d%s\n", unfinished, (killed ? sprintf("  (%d client(s) killed by timeout)", killed) : "")
	printf "failure_pct        %.3f %%   (threshold 0.1 %%)\n", failpct
	printf "retransmissions    %d\n", retr
	printf "wall_s             %.2f\n", wall
	printf "achieved_cps       %s   (sum over clients of 99.9 %% of successes / time to reach them)\n", ach
	printf "generated_cps      %s   (sum over clients of calls created / time to create them)\n", gen
	printf "proxy_cpu_s        %.2f (utime+stime, /proc/PID/stat)   %.3f (schedstat)\n", p_stat, p_ns
	printf "proxy_cpu_us_call  %s (stat)   %s (schedstat)\n", us_per(p_stat), us_per(p_ns)
	printf "proxy_cpu_us_net   %s (schedstat minus idle baseline %.2f %% of a core)\n", us_per(p_net), 100 * idle_rate
	printf "proxy_cpu_util     %.1f %% of one core (over the load period)\n", p_util
	printf "box_cpu            %.1f %% of %d CPUs used by proxy+backend+sink+SIPp clients\n", box, ncpu
	printf "others_cpu         %.1f %% of %d CPUs used by all other processes%s\n", others, ncpu, (others >= 5 ? "  WARNING: foreign load, figures disturbed" : "")
	if (extra != "") printf "backend_cpu_us_call %s (stat)   %s (schedstat)   [pids %s]\n", us_per(e_stat), us_per(e_ns), extra
	if (sink != "") printf "sink_cpu_us_call   %s (schedstat)\n", s_us
	printf "sipp_uac_cpu_us_call %s   (all clients)\n", us_per(uac)
	printf "latency_ms         n=%s mean=%s p50=%s p99=%s max=%s   (SIPp -trace_rtt, 1 ms resolution)\n", L[1], L[2], L[3], L[4], L[5]
	printf "udp_errors         %s  (host InErrors RcvbufErrors SndbufErrors during the run)\n", udperr
	cs_call = succ > 0 ? sprintf("%.2f", cs / succ) : "NA"
	printf "ctx_switches_call  %s   (voluntary + involuntary, all proxy threads)\n", cs_call
	printf "verdict            %s   (PASS: failures < 0.1 %% and achieved >= 95 %% of offered)\n", verdict
	printf "TSV\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%d\t%.2f\t%s\t%s\t%.2f\t%.3f\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
		now, label, name, scen, (rate_label != "" ? rate_label : rate), n, calls, succ, fail, unfinished, failpct, retr, wall, ach, gen,
		p_stat, p_ns, us_per(p_stat), us_per(p_ns), us_per(p_net), p_util, e_us, s_us, us_per(uac),
		box, others, udperr, L[1], L[2], L[3], L[4], L[5], verdict,
		cs_call, (per_call != "" ? per_call : 1)
}

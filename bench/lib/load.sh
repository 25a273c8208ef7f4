# shellcheck shell=bash
# load.sh - one bounded load run with 1..N SIPp clients in parallel (sourced by bench/run.sh).
# The bench reference's run_bench.sh drives exactly one SIPp client, and one SIPp saturates near
# 30000 OPTIONS/s on this box (its RESULTS.md); here CLIENTS clients run side by side, each on its
# own local port with a share of the rate and of the calls, and the proxy's CPU is read once before
# the first client starts and once after the last one exits (one window for all of them).
# Same accounting and verdict as run_bench.sh, whose helpers (reference lib.sh: cpu_ticks, cpu_ns,
# descendants, all_cpu_ticks, foreign_ticks, sipp_rates) are sourced from the reference copy:
#   CPU per call   utime+stime (/proc/PID/stat) and schedstat ns of all proxy threads / successful calls
#   verdict        PASS: failed + unfinished < 0.1 %, no client killed by `timeout`, achieved >= 95 %
#                  of offered; SLOW: no failure but the rate not sustained; FAIL otherwise
#   latency        SIPp -trace_rtt: one row per call with the time from the first request to the
#                  response marked rtd="true" (the final answer), in whole milliseconds (SIPp's clock)
#   context switches  voluntary + involuntary switches of all proxy threads (/proc/PID/task/*/status)
#                  over the same window, per successful call
# LOAD_PER_CALL=N (default 1, may be fractional): the floor runs (udp_null) offer N OPTIONS (datagram
# pairs) per call of the scenario they are the floor of: SIPp runs at RATE*N, the row keeps RATE and
# per_call=N, and its CPU per "call" is per OPTIONS (the report multiplies by N).
# Not a proxy starter: the system under test must already listen on its port.

# load_ctxsw PID...: voluntary + involuntary context switches of every thread of the PIDs.
load_ctxsw() {
	local p
	for p in "$@"; do cat /proc/"$p"/task/*/status 2>/dev/null; done |
		awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s + 0 }'
}

LOAD_TSV_HEADER='time_utc	label	proxy	scenario	rate	clients	calls	success	failed	unfinished	fail_pct	retrans	wall_s	achieved_cps	generated_cps	proxy_cpu_s_stat	proxy_cpu_s_sched	proxy_us_call_stat	proxy_us_call_sched	proxy_us_call_net	proxy_util_pct	backend_us_call	sink_us_call	uac_us_call	box_cpu_pct	others_cpu_pct	udp_errs	lat_n	lat_mean_ms	lat_p50_ms	lat_p99_ms	lat_max_ms	verdict	cs_per_call	per_call'

# load_stat_last CSV COLUMN: the value of COLUMN in the last row of a SIPp -trace_stat file (0 if none).
load_stat_last() {
	awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		{ v = $c } END { print (c && v ~ /^[0-9]+$/) ? v : 0 }' "$1" 2>/dev/null || echo 0
}

# load_latency RTT_CSV...: "n mean p50 p99 max" (ms) over the response_time column of SIPp's
# -trace_rtt files (header "Date_ms;response_time_ms;rtd_no"); "0 NA NA NA NA" without samples.
load_latency() {
	{ awk -F';' 'FNR > 1 && $2 ~ /^[0-9.]+$/ { print $2 }' "$@" 2>/dev/null || true; } | sort -n |
		awk '{ v[++n] = $1; s += $1 }
			function q(p,   i) { i = int(p * n + 0.999999); if (i < 1) i = 1; if (i > n) i = n; return v[i] }
			END { if (n == 0) { print "0 NA NA NA NA"; exit }
				printf "%d %.3f %g %g %g\n", n, s / n, q(0.50), q(0.99), v[n] }'
}

# load_udp_errs: host-wide UDP "InErrors RcvbufErrors SndbufErrors".
load_udp_errs() {
	awk '/^Udp:/ && !h { for (i = 1; i <= NF; i++) c[$i] = i; h = 1; next }
		/^Udp:/ { print $c["InErrors"], $c["RcvbufErrors"], $c["SndbufErrors"] }' /proc/net/snmp
}

# load_sink_start OUT: start the reference's UAS sink on 127.0.0.1:$SINK_PORT (bounded by timeout);
# sets LOAD_SINK_WRAP (the timeout wrapper) and LOAD_SINK_PIDS.
load_sink_start() {
	local out=$1
	LOAD_SINK_WRAP="" LOAD_SINK_PIDS=""
	bench_udp_port_busy "$SINK_PORT" && bench_die "udp port $SINK_PORT (sink) is busy"
	local rsa=()
	[ -n "${LOAD_SINK_RSA:-}" ] && rsa=(-rsa "$LOAD_SINK_RSA")
	printf 'setsid timeout %d sipp -sf %q -i 127.0.0.1 -p %d -buff_size %d -nostdin -trace_screen -screen_file %q %s\n' \
		$((LOAD_DURATION + TIMEOUT_PAD + 15)) "$LOAD_REF/sipp/uas_sink.xml" "$SINK_PORT" "$SIPP_BUF" \
		"$out/sink_screen.txt" "${rsa[*]}" >>"$out/command.txt"
	setsid timeout $((LOAD_DURATION + TIMEOUT_PAD + 15)) \
		sipp -sf "$LOAD_REF/sipp/uas_sink.xml" -i 127.0.0.1 -p "$SINK_PORT" -buff_size "$SIPP_BUF" -nostdin \
		"${rsa[@]}" -trace_screen -screen_file "$out/sink_screen.txt" </dev/null >/dev/null 2>"$out/sink_stderr.txt" &
	LOAD_SINK_WRAP=$!
	bench_wait_port "$SINK_PORT" 5 "$LOAD_SINK_WRAP" || bench_die "UAS sink did not start ($out/sink_stderr.txt)"
	LOAD_SINK_PIDS=$(descendants "$LOAD_SINK_WRAP" | tr '\n' ' ')
}

# load_sink_stop: SIGUSR1 to the sink's SIPp (smooth exit: it writes its screen file), TERM to the
# wrapper if it is still there after 15 s. Only the recorded processes.
load_sink_stop() {
	[ -n "${LOAD_SINK_WRAP:-}" ] || return 0
	local p
	if bench_pid_alive "$LOAD_SINK_WRAP"; then
		for p in $(descendants "$LOAD_SINK_WRAP"); do
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" = sipp ] && kill -USR1 "$p" 2>/dev/null
		done
		for _ in $(seq 150); do bench_pid_alive "$LOAD_SINK_WRAP" || break; sleep 0.1; done
		bench_pid_alive "$LOAD_SINK_WRAP" && kill -TERM "$LOAD_SINK_WRAP" 2>/dev/null
	fi
	wait "$LOAD_SINK_WRAP" 2>/dev/null
	LOAD_SINK_WRAP=""
}

# load_clients_start OUT PORT RATE CALLS N: start N SIPp clients; client i gets rate RATE/N (the
# remainder spread over the first ones), the same share of CALLS, local port UAC_PORT+i (or a free
# one), its own folder OUT/cI (SIPp writes the -trace_rtt file into its working folder).
# Sets LOAD_CLIENT_JOBS.
load_clients_start() {
	local out=$1 port=$2 rate=$3 calls=$4 n=$5 i r m f lport d line
	local -a cmd
	LOAD_CLIENT_JOBS=()
	for ((i = 0; i < n; i++)); do
		r=$((rate / n + (i < rate % n ? 1 : 0)))
		m=$((calls / n + (i < calls % n ? 1 : 0)))
		lport=$(bench_pick_port $((UAC_PORT + i)))
		d=$out/c$i
		mkdir -p "$d"
		# SIPp writes its rtt rows in blocks of -rtt_freq calls and drops a last partial block:
		# the largest block size that divides this client's calls loses none
		for f in 1000 500 250 200 100 50 25 20 10 5 2 1; do ((m % f == 0)) && break; done
		cmd=(sipp "127.0.0.1:$port" -sf "$LOAD_XML" "${LOAD_INF[@]}" -i 127.0.0.1 -p "$lport"
			-r "$r" -rp 1000 -m "$m" -buff_size "$SIPP_BUF" -nostdin
			-trace_stat -stf "$d/sipp_stat.csv" -fd 1 -trace_screen -screen_file "$d/sipp_screen.txt"
			-trace_err -error_file "$d/sipp_err.log" -max_log_size 2000000 -trace_rtt -rtt_freq "$f")
		line=$(printf '(cd %q && timeout %d %s)' "$d" $((LOAD_DURATION + TIMEOUT_PAD)) "$(printf '%q ' "${cmd[@]}")")
		printf '%s\n' "$line" >>"$out/command.txt"
		printf '%s &\n' "$line" >>"$BENCH_WORK/commands.txt"
		printf '+ %s &\n' "$line" >&2
		(
			cd "$d" || exit 1
			TIMEFORMAT='%U %S'
			{ time timeout $((LOAD_DURATION + TIMEOUT_PAD)) "${cmd[@]}" </dev/null >/dev/null 2>sipp_stderr.txt
				echo "$?" >sipp_rc.txt; } 2>sipp_time.txt
		) &
		LOAD_CLIENT_JOBS+=($!)
	done
}

# load_clients_merge OUT N CALLS: "success failed created retrans achieved generated uac_cpu_s killed"
# summed over the clients (achieved/generated: sum of each client's sustained rate, NA if one lacks it).
load_clients_merge() {
	local out=$1 n=$2 calls=$3 i d m ach gen uu us rc
	local succ=0 fail=0 created=0 retr=0 sach=0 sgen=0 cpu=0 killed=0
	for ((i = 0; i < n; i++)); do
		d=$out/c$i
		m=$((calls / n + (i < calls % n ? 1 : 0)))
		succ=$((succ + $(load_stat_last "$d/sipp_stat.csv" 'SuccessfulCall(C)')))
		fail=$((fail + $(load_stat_last "$d/sipp_stat.csv" 'FailedCall(C)')))
		created=$((created + $(load_stat_last "$d/sipp_stat.csv" 'TotalCallCreated')))
		retr=$((retr + $(load_stat_last "$d/sipp_stat.csv" 'Retransmissions(C)')))
		read -r ach gen < <(sipp_rates "$d/sipp_stat.csv" "$m")
		sach=$(awk -v a="$sach" -v b="${ach:-NA}" 'BEGIN { print (a == "NA" || b == "NA") ? "NA" : a + b }')
		sgen=$(awk -v a="$sgen" -v b="${gen:-NA}" 'BEGIN { print (a == "NA" || b == "NA") ? "NA" : a + b }')
		read -r uu us <"$d/sipp_time.txt" 2>/dev/null || { uu=0; us=0; }
		cpu=$(awk -v a="$cpu" -v u="${uu:-0}" -v s="${us:-0}" 'BEGIN { print a + u + s }')
		rc=$(cat "$d/sipp_rc.txt" 2>/dev/null || echo 124)
		[ "$rc" = 124 ] && killed=$((killed + 1))
	done
	echo "$succ $fail $created $retr $sach $sgen $cpu $killed"
}

# load_run NAME SCENARIO PORT RATE DURATION CLIENTS: one run against 127.0.0.1:PORT. Writes
# $RES_DIR/<UTC time>_<NAME>_<SCENARIO>_r<RATE>_d<DURATION>/ (command.txt, summary.txt, cI/ per
# client: SIPp statistics, screen, errors, rtt file), appends one line to $RES_DIR/summary.tsv
# (LOAD_TSV_HEADER) and prints the summary. True for PASS.
# Needs: LOAD_REF (reference copy; its lib.sh sourced), LOAD_XML, LOAD_INF (array: -inf FILE or
# empty), LOAD_SINK (yes|no), LOAD_SINK_RSA (optional host:port the sink sends everything to), PROXY_PIDS, EXTRA_PIDS (backend such as Redis, may be empty),
# RES_DIR, SINK_PORT, UAC_PORT, TIMEOUT_PAD, SIPP_BUF, IDLE_S.
load_run() {
	local name=$1 scen=$2 port=$3 rate_label=$4 dur=$5 n=$6 per_call=${LOAD_PER_CALL:-1}
	local rate
	rate=$(awk -v r="$4" -v m="$per_call" 'BEGIN { printf "%d", r * m + 0.5 }')
	local calls=$((rate * dur)) label out j ue0 ur0 us0 ue1 ur1 us1 ours oticks cs0 cs1
	local i_n0 i_n1 i_t0 i_t1 p_t0 p_n0 p_t1 p_n1 e_t0 e_n0 e_t1 e_n1 s_n0 s_n1 t0 t1
	local succ fail created retr ach gen uac killed lat
	((n >= 1 && n <= 8)) || bench_die "CLIENTS must be 1..8 (got $n)"
	((rate >= n)) || bench_die "rate $rate below the number of clients $n"
	LOAD_DURATION=$dur
	label=${name}_${scen}_r${rate_label}_d${dur}
	out=$RES_DIR/$(date -u +%Y%m%dT%H%M%SZ)_$label
	mkdir -p "$out"
	bench_udp_port_busy "$port" || bench_die "nothing listens on udp 127.0.0.1:$port ($name)"
	# shellcheck disable=SC2086
	{ i_n0=$(cpu_ns $PROXY_PIDS); i_t0=$(date +%s.%N); sleep "$IDLE_S"; i_n1=$(cpu_ns $PROXY_PIDS); i_t1=$(date +%s.%N); }
	LOAD_SINK_WRAP="" LOAD_SINK_PIDS=""
	[ "$LOAD_SINK" = yes ] && load_sink_start "$out"
	read -r ue0 ur0 us0 < <(load_udp_errs)
	# shellcheck disable=SC2086
	{ p_t0=$(cpu_ticks $PROXY_PIDS); p_n0=$(cpu_ns $PROXY_PIDS); e_t0=$(cpu_ticks $EXTRA_PIDS); e_n0=$(cpu_ns $EXTRA_PIDS); s_n0=$(cpu_ns $LOAD_SINK_PIDS); cs0=$(load_ctxsw $PROXY_PIDS); }
	ours="$$ $BASHPID $PROXY_PIDS $EXTRA_PIDS $LOAD_SINK_PIDS $(descendants $$ | tr '\n' ' ')"
	# shellcheck disable=SC2086
	all_cpu_ticks $ours >"$out/.others0"
	bench_log "run $label: $calls calls at $rate cps from $n SIPp client(s) -> 127.0.0.1:$port (proxy pids: $PROXY_PIDS${EXTRA_PIDS:+, backend $EXTRA_PIDS})"
	t0=$(date +%s.%N)
	load_clients_start "$out" "$port" "$rate" "$calls" "$n"
	for j in "${LOAD_CLIENT_JOBS[@]}"; do wait "$j"; done
	t1=$(date +%s.%N)
	# shellcheck disable=SC2086
	{ p_t1=$(cpu_ticks $PROXY_PIDS); p_n1=$(cpu_ns $PROXY_PIDS); e_t1=$(cpu_ticks $EXTRA_PIDS); e_n1=$(cpu_ns $EXTRA_PIDS); s_n1=$(cpu_ns $LOAD_SINK_PIDS); cs1=$(load_ctxsw $PROXY_PIDS); }
	read -r ue1 ur1 us1 < <(load_udp_errs)
	# shellcheck disable=SC2086,SC2046
	all_cpu_ticks $ours $(descendants $$ | tr '\n' ' ') >"$out/.others1"
	oticks=$(foreign_ticks "$out/.others0" "$out/.others1")
	rm -f "$out/.others0" "$out/.others1"
	load_sink_stop
	read -r succ fail created retr ach gen uac killed < <(load_clients_merge "$out" "$n" "$calls")
	lat=$(load_latency "$out"/c*/*_rtt.csv)
	awk -v label="$label" -v name="$name" -v scen="$scen" -v rate="$rate" -v n="$n" -v calls="$calls" \
		-v succ="$succ" -v fail="$fail" -v created="$created" -v retr="$retr" -v ach="$ach" -v gen="$gen" \
		-v uac="$uac" -v killed="$killed" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" -v ncpu="$(nproc)" \
		-v pt0="$p_t0" -v pt1="$p_t1" -v pn0="$p_n0" -v pn1="$p_n1" -v et0="$e_t0" -v et1="$e_t1" \
		-v en0="$e_n0" -v en1="$e_n1" -v sn0="$s_n0" -v sn1="$s_n1" -v in0="$i_n0" -v in1="$i_n1" \
		-v it0="$i_t0" -v it1="$i_t1" -v extra="$EXTRA_PIDS" -v sink="$LOAD_SINK_PIDS" -v oticks="$oticks" \
		-v udperr="$((ue1 - ue0)) $((ur1 - ur0)) $((us1 - us0))" -v lat="$lat" -v now="$(date -u +%FT%TZ)" \
		-v rate_label="$rate_label" -v per_call="$per_call" -v cs="$((cs1 - cs0))" \
		-f "$BENCH_SRC/lib/load_summary.awk" >"$out/summary.raw"
	grep -v '^TSV' "$out/summary.raw" >"$out/summary.txt"
	[ -f "$RES_DIR/summary.tsv" ] || printf '%s\n' "$LOAD_TSV_HEADER" >"$RES_DIR/summary.tsv"
	grep '^TSV' "$out/summary.raw" | cut -f2- >>"$RES_DIR/summary.tsv"
	rm -f "$out/summary.raw"
	echo "results: $out" >>"$out/summary.txt"
	cat "$out/summary.txt"
	grep -q '^verdict  *PASS' "$out/summary.txt"
}

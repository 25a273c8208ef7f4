# shellcheck shell=bash
# lib.sh - helpers sourced by referee's integration tests (tests/integration/test_*.sh).
# Starts referee with a generated config and a 0600 secret in a mktemp folder, SIPp peers,
# waits for UDP ports, and kills everything it started when the test exits (EXIT trap,
# by recorded PID only). Everything runs on 127.0.0.1 and every wait is bounded.
# Environment (set by ctest): REFEREE_BUILD_DIR, REFEREE_SOURCE_DIR, REFEREE_SHARED_DIR.
# Optional: REFEREE_BIN (binary to test), IT_KEEP=1 (keep the work folder for a post-mortem).
# Not a test framework: a test calls it_check/it_fail and ends with it_finish.

IT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REFEREE_SOURCE_DIR=${REFEREE_SOURCE_DIR:-$(cd "$IT_LIB_DIR/../.." && pwd)}
REFEREE_BUILD_DIR=${REFEREE_BUILD_DIR:-$REFEREE_SOURCE_DIR/build}
REFEREE_SHARED_DIR=${REFEREE_SHARED_DIR:-$REFEREE_SOURCE_DIR/../shared}
REFEREE_BIN=${REFEREE_BIN:-$REFEREE_BUILD_DIR/referee}
# shellcheck disable=SC2034  # used by the test scripts that source this file
IT_SIPP_DIR=$IT_LIB_DIR/sipp
# Sanitizer defaults when the caller (tests/run-all.sh) did not set them: a report makes the
# process exit non-zero and is also looked for in its stderr (it_sanitizer_clean).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

IT_WORK=$(mktemp -d "${TMPDIR:-/tmp}/referee-it.XXXXXX") || { echo "FAIL mktemp" >&2; exit 1; }
IT_PIDS=()      # every background process started through it_spawn, stopped by it_cleanup
IT_FAILS=0
IT_CHECKS=0
REFEREE_PID=""

it_log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# it_check NAME: record a passed check; it_fail NAME DETAIL: a failed one (the test goes on).
it_check() { IT_CHECKS=$((IT_CHECKS + 1)); echo "PASS  $1"; }
it_fail() { IT_CHECKS=$((IT_CHECKS + 1)); IT_FAILS=$((IT_FAILS + 1)); echo "FAIL  $1${2:+: $2}"; }

# it_die MESSAGE: a precondition is missing; the test fails at once (never skips silently).
it_die() { echo "FAIL  $*"; exit 1; }

# it_finish: summary line and exit status (0 only when every check passed and at least one ran).
it_finish() {
	echo "$((IT_CHECKS - IT_FAILS)) of $IT_CHECKS checks passed (work folder: $IT_WORK)"
	[ "$IT_CHECKS" -gt 0 ] && [ "$IT_FAILS" -eq 0 ]
	exit $?
}

it_pid_alive() {
	[ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# it_kill PID: TERM, then KILL after 3 s. Only the given PID (and, for a `timeout` wrapper,
# the child it forwards TERM to).
it_kill() {
	local pid=$1
	it_pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 30); do it_pid_alive "$pid" || break; sleep 0.1; done
	it_pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

it_cleanup() {
	local rc=$? p
	for p in "${IT_PIDS[@]}"; do it_kill "$p"; done
	if [ "${IT_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
		echo "work folder kept: $IT_WORK" >&2
	else
		rm -rf "$IT_WORK"
	fi
	exit "$rc"
}
trap it_cleanup EXIT
trap 'exit 130' INT TERM

# it_need CMD...: fail (not skip) when a tool the test needs is missing.
it_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || it_die "'$c' not installed (packaging/install-deps.sh --test)"
	done
}

# it_free_udp_port: print a UDP port of 127.0.0.1 nobody has bound right now (the kernel
# picks it; a race with another process is possible but unlikely in the ephemeral range).
it_free_udp_port() {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# it_free_tcp_port: the same for a TCP port (metrics.listen, servers that bind both).
it_free_tcp_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

it_udp_port_bound() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }

# it_wait_udp_port PORT SECONDS [PID]: wait until PORT is bound; gives up early when PID died.
it_wait_udp_port() {
	local port=$1 n=$(($2 * 10)) pid=${3:-}
	for _ in $(seq "$n"); do
		it_udp_port_bound "$port" && return 0
		[ -n "$pid" ] && ! it_pid_alive "$pid" && return 1
		sleep 0.1
	done
	return 1
}

# it_spawn NAME CMD...: run CMD in the background, stdout/stderr in $IT_WORK/NAME.{out,err};
# its PID is in IT_LAST_PID and stopped by the EXIT trap.
it_spawn() {
	local name=$1
	shift
	"$@" </dev/null >"$IT_WORK/$name.out" 2>"$IT_WORK/$name.err" &
	IT_LAST_PID=$!
	IT_PIDS+=("$IT_LAST_PID")
}

# it_term_wait PID LIMIT [STACKS_FILE]: SIGTERM our child PID and reap it with `wait`, KILLing
# it after LIMIT s. Sets IT_STOP_RC (its exit status), IT_STOP_SECS (how long it took) and
# IT_STOP_KILLED (1 when the limit was reached; its threads' stacks are then in STACKS_FILE when
# gdb is installed, saved just before the KILL). Race-free: the verdict comes from `wait`, not
# from polling /proc, which once called an exited child "still running" (its pid reaped by bash
# between two looks: it then named nothing, or another process).
it_term_wait() {
	local pid=$1 limit=$2 stacks=${3:-/dev/null} t0 t1 wd
	t0=$(date +%s.%N)
	kill -TERM "$pid" 2>/dev/null
	rm -f "$IT_WORK/.killed.$pid"
	( sleep "$limit"
	  if kill -0 "$pid" 2>/dev/null; then
		command -v gdb >/dev/null && timeout 60 gdb -batch -p "$pid" -ex 'thread apply all bt' >"$stacks" 2>&1
		: >"$IT_WORK/.killed.$pid"
		kill -KILL "$pid" 2>/dev/null
	  fi ) &
	wd=$!
	wait "$pid"
	IT_STOP_RC=$?
	t1=$(date +%s.%N)
	kill "$wd" 2>/dev/null
	wait "$wd" 2>/dev/null
	IT_STOP_KILLED=0
	[ -e "$IT_WORK/.killed.$pid" ] && IT_STOP_KILLED=1
	IT_STOP_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# ---- referee ------------------------------------------------------------------------------

# referee_secret FILE: 32 random bytes, base64, mode 0600 (SPEC §3: refused otherwise).
referee_secret() {
	(umask 077 && head -c 32 /dev/urandom | base64 >"$1")
	chmod 600 "$1"
}

# referee_config FILE PORT LOCAL_PORT [EXTRA_YAML]: a minimal config for one listen port on
# 127.0.0.1, domain example.com, routes.local at 127.0.0.1:LOCAL_PORT, 2 receivers and
# 2 workers, file store ($IT_WORK/users.yaml, written by the caller), secret in $IT_WORK,
# no route health probes.
# EXTRA_YAML is appended verbatim (top-level keys: trusted, rules, auth, ...).
referee_config() {
	local f=$1 port=$2 local_port=$3 extra=${4:-}
	[ -f "$IT_WORK/secret" ] || referee_secret "$IT_WORK/secret"
	[ -f "$IT_WORK/users.yaml" ] || printf 'users: []\n' >"$IT_WORK/users.yaml"
	cat >"$f" <<EOF
# generated by tests/integration/lib.sh
listen: [udp://127.0.0.1:$port]
domains: [example.com]
realm: example.com
secret_file: $IT_WORK/secret
threads: {receivers: 2, workers: 2}
routes:
  local: udp://127.0.0.1:$local_port
# the SIPp sinks of these tests take an OPTIONS probe for a call (test_health_sipp.sh probes)
health: {interval: 0}
store:
  backend: file
  file: $IT_WORK/users.yaml
log_level: info
$extra
EOF
}

# referee_start CONFIG PORT: check the config with --check, start referee in the foreground
referee_start() {
	local cfgf=$1 port=$2
	[ -x "$REFEREE_BIN" ] || it_die "referee binary not found at $REFEREE_BIN (build target 'referee')"
	if ! "$REFEREE_BIN" -c "$cfgf" --check >"$IT_WORK/check.out" 2>&1; then
		cat "$IT_WORK/check.out"
		it_die "referee --check rejected the generated config $cfgf"
	fi
	it_spawn referee "$REFEREE_BIN" -c "$cfgf"
	REFEREE_PID=$IT_LAST_PID
	if ! it_wait_udp_port "$port" 20 "$REFEREE_PID"; then
		tail -n 30 "$IT_WORK/referee.err"
		it_die "referee did not bind udp 127.0.0.1:$port (pid $REFEREE_PID)"
	fi
	it_log "referee pid $REFEREE_PID on udp 127.0.0.1:$port"
}

# proxy_start CONFIG PORT NEXT_PORT: referee_start, or with IT_PROXY=kamailio (harness
# development only, never a referee result) the bench reference's Kamailio as a plain
# stateless proxy (WITH_NOAUTH) on PORT relaying to 127.0.0.1:NEXT_PORT.
proxy_start() {
	local cfgf=$1 port=$2 next=$3 t
	if [ "${IT_PROXY:-referee}" != kamailio ]; then
		referee_start "$cfgf" "$port"
		return
	fi
	local kcfg=$REFEREE_SHARED_DIR/bench-reference/kamailio/kamailio.cfg
	[ -f "$kcfg" ] || it_die "no $kcfg"
	mkdir -p "$IT_WORK/kam"
	for t in cred perm; do
		echo 'id(int,auto) key_name(str) key_type(int) value_type(int) key_value(str,null) expires(int)' >"$IT_WORK/kam/$t"
	done
	printf 'id(int,auto) table_name(str) table_version(int)\n1:cred:2\n2:perm:2\n' >"$IT_WORK/kam/version"
	it_spawn kamailio kamailio -f "$kcfg" -DD -E -m 64 -M 8 -Y "$IT_WORK/kam" \
		-A "LISTEN_PORT=$port" -A KCHILDREN=2 -A "SINK_URI=\"sip:127.0.0.1:$next\"" \
		-A WITH_NOAUTH -A WITH_MD5_SIG -A "DB_URL=\"text://$IT_WORK/kam\""
	REFEREE_PID=$IT_LAST_PID
	REFEREE_ERR=$IT_WORK/kamailio.err
	it_wait_udp_port "$port" 10 "$REFEREE_PID" || { cat "$REFEREE_ERR"; it_die "kamailio did not start"; }
}

# referee_stop_check SECONDS: SIGTERM referee; checks it exits 0 within SECONDS and that its
# stderr holds no sanitizer report. Records checks "referee_sigterm_exit0" and
# "referee_no_sanitizer_report".
referee_stop_check() {
	local limit=$1
	if ! it_pid_alive "$REFEREE_PID"; then
		wait "$REFEREE_PID" 2>/dev/null
		it_fail referee_sigterm_exit0 "referee died before SIGTERM (exit $?)"
		tail -n 30 "$IT_WORK/referee.err"
	else
		it_term_wait "$REFEREE_PID" "$limit" "$IT_WORK/referee.slow-exit.txt"
		if [ "$IT_STOP_KILLED" -eq 1 ]; then
			it_fail referee_sigterm_exit0 "still running ${limit}s after SIGTERM (killed; stacks: $IT_WORK/referee.slow-exit.txt)"
		elif [ "$IT_STOP_RC" -eq 0 ]; then
			it_check "referee_sigterm_exit0 (${IT_STOP_SECS}s)"
		else
			it_fail referee_sigterm_exit0 "exit status $IT_STOP_RC after ${IT_STOP_SECS}s"
		fi
	fi
	local errf=${REFEREE_ERR:-$IT_WORK/referee.err}
	if [ ! -f "$errf" ]; then
		it_fail referee_no_sanitizer_report "no stderr file $errf"
	elif it_sanitizer_clean "$errf"; then
		it_check referee_no_sanitizer_report
	else
		it_fail referee_no_sanitizer_report "see $errf"
		grep -m 5 -E 'Sanitizer|runtime error' "$errf"
	fi
}

# it_sanitizer_clean FILE: true when FILE has no ASan/LSan/UBSan/TSan report.
it_sanitizer_clean() {
	! grep -qE 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|WARNING: ThreadSanitizer|runtime error:|SUMMARY: [A-Za-z]+Sanitizer' "$1"
}

# ---- NSD ----------------------------------------------------------------------------------

# nsd_start DIR ZONE [control]: NSD on 127.0.0.1:NSD_PORT (a port picked here, free for UDP and
# TCP: NSD binds both) serving the zone file DIR/ZONE.zone, written by the caller; with
# "control", also its remote control on DIR/nsd.sock (nsd-control -c DIR/nsd.conf). Its log is
# DIR/nsd.log. Sets NSD_PORT and NSD_PID; dies when NSD does not bind.
nsd_start() {
	local dir=$1 zone=$2 control=${3:-}
	NSD_PORT=$(python3 -c 'import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); p = u.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass')
	{
		cat <<EOF
server:
  ip-address: 127.0.0.1@$NSD_PORT
  username: ""
  chroot: ""
  zonesdir: "$dir"
  pidfile: "$dir/nsd.pid"
  database: ""
  xfrdfile: "$dir/xfrd.state"
  zonelistfile: "$dir/zone.list"
  logfile: "$dir/nsd.log"
  server-count: 1
  verbosity: 1
EOF
		if [ "$control" = control ]; then
			cat <<EOF
remote-control:
  control-enable: yes
  control-interface: $dir/nsd.sock
EOF
		fi
		cat <<EOF
zone:
  name: $zone
  zonefile: $zone.zone
EOF
	} >"$dir/nsd.conf"
	it_spawn nsd nsd -d -c "$dir/nsd.conf"
	NSD_PID=$IT_LAST_PID
	it_wait_udp_port "$NSD_PORT" 10 "$NSD_PID" || {
		cat "$IT_WORK/nsd.err" "$dir/nsd.log" 2>/dev/null
		it_die "nsd did not bind udp 127.0.0.1:$NSD_PORT"
	}
}

# ---- SIPp ---------------------------------------------------------------------------------
# Each SIPp run NAME works in its own folder $IT_WORK/NAME (SIPp writes -trace_counts files
# into its current directory): stat.csv (-trace_stat), *_counts.csv (-trace_counts),
# errors.log (-trace_err), screen.txt, cmd (the exact command), out/err.

# sipp_uas_start NAME PORT SCENARIO SECONDS [SIPP_ARGS...]: a SIPp UAS on 127.0.0.1:PORT,
# killed by `timeout` after SECONDS at the latest (and by the EXIT trap). Sets IT_LAST_PID.
sipp_uas_start() {
	local name=$1 port=$2 xml=$3 secs=$4 d=$IT_WORK/$1
	shift 4
	mkdir -p "$d"
	echo "timeout $secs sipp -sf $xml -i 127.0.0.1 -p $port" >"$d/cmd"
	(cd "$d" && exec timeout "$secs" sipp -sf "$xml" -i 127.0.0.1 -p "$port" -nostdin \
		-buff_size 1048576 -trace_err -error_file "$d/errors.log" \
		-trace_stat -stf "$d/stat.csv" -fd 1 -trace_counts "$@" \
		</dev/null >"$d/out" 2>"$d/err") &
	IT_LAST_PID=$!
	IT_PIDS+=("$IT_LAST_PID")
	it_wait_udp_port "$port" 10 "$IT_LAST_PID" || {
		cat "$d/err"
		it_die "SIPp UAS $name did not bind udp 127.0.0.1:$port"
	}
}

# sipp_stat_last STATFILE FIELD: the value of FIELD in the last row of a -trace_stat or
# -trace_counts CSV ("NA" when absent).
sipp_stat_last() {
	awk -F';' -v f="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == f) c = i; next }
		{ v = $c } END { if (c && NR > 1) print v + 0; else print "NA" }' "$1" 2>/dev/null || echo NA
}

# sipp_count NAME COLUMN: COLUMN (e.g. 0_INVITE_Recv) of the -trace_counts file of run NAME.
sipp_count() {
	local f
	f=$(find "$IT_WORK/$1" -maxdepth 1 -name '*_counts.csv' | head -n 1)
	[ -n "$f" ] && sipp_stat_last "$f" "$2" || echo NA
}

# sipp_unexpected NAME: sum of every *_Unexp column of run NAME's -trace_counts file.
sipp_unexpected() {
	local f
	f=$(find "$IT_WORK/$1" -maxdepth 1 -name '*_counts.csv' | head -n 1)
	[ -n "$f" ] || { echo NA; return; }
	awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /_Unexp$/) u[i] = 1; next }
		{ s = 0; for (i in u) s += $i } END { print s + 0 }' "$f"
}

# sipp_uac_run NAME CALLS RATE SECONDS TARGET_PORT SCENARIO [SIPP_ARGS...]: one bounded SIPp
# client run (-m CALLS -r RATE, wrapped in timeout SECONDS) against 127.0.0.1:TARGET_PORT (or
# IT_SIPP_HOST:TARGET_PORT, a balancer on 127.0.0.2) from a free local port of 127.0.0.1 (or of
# IT_SIPP_SRC, another loopback address: a distinct source for referee). Sets SIPP_RC,
# SIPP_OK, SIPP_FAILED (from -trace_stat).
sipp_uac_run() {
	local name=$1 calls=$2 rate=$3 secs=$4 port=$5 xml=$6 d=$IT_WORK/$1 lport host=${IT_SIPP_HOST:-127.0.0.1}
	local src=${IT_SIPP_SRC:-127.0.0.1}
	shift 6
	mkdir -p "$d"
	lport=${SIPP_LPORT:-$(it_free_udp_port)} # SIPP_LPORT: a caller's port (free for TCP too)
	echo "timeout $secs sipp $host:$port -sf $xml -i $src -p $lport -m $calls -r $rate $*" >"$d/cmd"
	(cd "$d" && exec timeout "$secs" sipp "$host:$port" -sf "$xml" -i "$src" -p "$lport" \
		-m "$calls" -r "$rate" -nostdin -buff_size 1048576 -recv_timeout 10000 \
		-trace_err -error_file "$d/errors.log" -trace_stat -stf "$d/stat.csv" -fd 1 \
		-trace_counts -trace_screen -screen_file "$d/screen.txt" "$@" \
		</dev/null >"$d/out" 2>"$d/err")
	SIPP_RC=$?
	SIPP_DIR=$d
	SIPP_OK=$(sipp_stat_last "$d/stat.csv" 'SuccessfulCall(C)')
	SIPP_FAILED=$(sipp_stat_last "$d/stat.csv" 'FailedCall(C)')
	it_log "sipp $name: rc=$SIPP_RC successful=$SIPP_OK failed=$SIPP_FAILED unexpected=$(sipp_unexpected "$name") ($(cat "$d/cmd"))"
}

# sipp_uac_expect CHECK CALLS: record CHECK for the last sipp_uac_run: SIPp exit 0, CALLS
# successful, 0 failed.
sipp_uac_expect() {
	local name=$1 calls=$2
	if [ "$SIPP_RC" -eq 0 ] && [ "$SIPP_OK" = "$calls" ] && [ "$SIPP_FAILED" = 0 ]; then
		it_check "$name ($SIPP_OK/$calls calls, 0 failed)"
	else
		it_fail "$name" "sipp exit $SIPP_RC, successful $SIPP_OK of $calls, failed $SIPP_FAILED (see $SIPP_DIR/)"
		tail -n 20 "$SIPP_DIR/errors.log" 2>/dev/null
		tail -n 5 "$SIPP_DIR/err" 2>/dev/null
	fi
}

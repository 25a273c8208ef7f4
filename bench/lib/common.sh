# shellcheck shell=bash
# common.sh - shared helpers of bench/run.sh (sourced): logging that shows the exact commands,
# free UDP/TCP port selection on 127.0.0.1, process control by recorded PID, and the referee
# sources of one commit (bench_sync_head). Not a measurement tool itself: the load runs are
# lib/load.sh, which reuses the bench reference's CPU accounting helpers (its lib.sh).

bench_log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "ERROR: $*"; exit 1; }

# bench_cmd CMD...: print the exact command (shell-quoted) on stderr and in $BENCH_WORK/commands.txt, run it.
bench_cmd() {
	local q
	q=$(printf '%q ' "$@")
	printf '+ %s\n' "$q" >&2
	printf '%s\n' "$q" >>"$BENCH_WORK/commands.txt"
	"$@"
}

bench_pid_alive() {
	[ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

bench_udp_port_busy() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }

# bench_pick_port PREFERRED: PREFERRED when nothing listens there, else a kernel-chosen free port.
bench_pick_port() {
	if ! bench_udp_port_busy "$1"; then
		echo "$1"
		return
	fi
	python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_wait_port PORT SECONDS PID: wait until PORT is bound, false early when PID died.
bench_wait_port() {
	local port=$1 n=$(($2 * 10)) pid=$3
	for _ in $(seq "$n"); do
		bench_udp_port_busy "$port" && return 0
		bench_pid_alive "$pid" || return 1
		sleep 0.1
	done
	return 1
}

# bench_stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL. Only that PID.
bench_stop_pid() {
	local pid=$1 secs=${2:-5}
	bench_pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq $((secs * 10))); do bench_pid_alive "$pid" || break; sleep 0.1; done
	if bench_pid_alive "$pid"; then
		bench_log "pid $pid still alive ${secs}s after SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

bench_tcp_port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# bench_pick_tcp_port PREFERRED: PREFERRED when no TCP listener has it, else a kernel-chosen free port.
bench_pick_tcp_port() {
	if ! bench_tcp_port_busy "$1"; then
		echo "$1"
		return
	fi
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_sync_head REPO DEST: make DEST hold exactly the files of REPO's HEAD commit (git archive);
# a file whose content did not change keeps its mtime, so a build in DEST stays incremental.
# Uncommitted edits in REPO's work tree are not taken: the binary is the commit's.
bench_sync_head() {
	local repo=$1 dest=$2 tmp f
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/referee-head.XXXXXX") || return 1
	if ! git -C "$repo" archive HEAD | tar -x -C "$tmp"; then
		rm -rf "$tmp"
		return 1
	fi
	mkdir -p "$dest"
	while IFS= read -r f; do
		cmp -s "$tmp/$f" "$dest/$f" && continue
		mkdir -p "$(dirname "$dest/$f")" && cp "$tmp/$f" "$dest/$f"
	done < <(cd "$tmp" && find . -type f)
	while IFS= read -r f; do
		[ -e "$tmp/$f" ] || rm -f "$dest/$f"
	done < <(cd "$dest" && find . -type f)
	rm -rf "$tmp"
}

# bench_cmd_log LOG CMD...: as bench_cmd, with the command's output (stdout and stderr) in LOG.
bench_cmd_log() {
	local log=$1 q
	shift
	q=$(printf '%q ' "$@")
	printf '+ %s>%q 2>&1\n' "$q" "$log" >&2
	printf '%s\n' "$q" >>"$BENCH_WORK/commands.txt"
	"$@" >"$log" 2>&1
}

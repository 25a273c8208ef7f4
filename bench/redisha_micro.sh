#!/usr/bin/env bash
# redisha_micro.sh - bench_store_redis (the store's miss path: async HGETALL, then cache hits) on
# one redis-server, through Sentinel and on a three-master Cluster (SPEC §12), interleaved REPEATS
# times, the same USERS in each. CPU is this process's (the store client); Redis's is not counted.
#   bench/redisha_micro.sh BUILD_DIR [USERS] [WINDOW] [REPEATS]   (build target bench_store_redis)
set -uo pipefail
BUILD=$(cd "${1:?usage: bench/redisha_micro.sh BUILD_DIR [USERS] [WINDOW] [REPEATS]}" && pwd)
USERS=${2:-50000}
WINDOW=${3:-256}
REPEATS=${4:-3}
export REFEREE_BUILD_DIR=$BUILD
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../tests/integration/lib.sh"
. "$HERE/../tests/integration/lib_redisha.sh"
BENCH=$BUILD/bench/bench_store_redis
[ -x "$BENCH" ] || it_die "no $BENCH (cmake --build $BUILD --target bench_store_redis)"
W=$IT_WORK
read -r SINGLE MPORT RPORT S1 S2 S3 C1 C2 C3 <<<"$(rha_ports 9)"
rha_redis single "$SINGLE"
rha_sentinel_set "$MPORT" "$RPORT" "$S1" "$S2" "$S3"
rha_cluster "$C1" "$C2" "$C3"
"$HERE/redisha_load_users.sh" "$MPORT" "$USERS"
"$HERE/redisha_load_users.sh" "$C1" "$USERS" -c
declare -A URL=(
	[single]="redis://127.0.0.1:$SINGLE"
	[sentinel]="redis-sentinel://127.0.0.1:$S1,127.0.0.1:$S2,127.0.0.1:$S3/mymaster"
	[cluster]="redis-cluster://127.0.0.1:$C1,127.0.0.1:$C2,127.0.0.1:$C3"
)
for r in $(seq "$REPEATS"); do
	for m in single sentinel cluster; do
		echo "== $m (run $r): $BENCH ${URL[$m]} $USERS $WINDOW"
		"$BENCH" "${URL[$m]}" "$USERS" "$WINDOW" | tee -a "$W/$m.txt" || it_fail "bench $m run $r"
	done
done
# stat FILE KIND: "min median" of the CPU µs/lookup column of the KIND (miss|hit) lines
stat() {
	grep "$2" "$1" | awk '{ print $(NF-4) }' | sort -n | awk '{ a[NR] = $1 } END { print a[1], a[int((NR + 1) / 2)] }'
}
echo "CPU us per lookup (min median of $REPEATS runs, $USERS users, window $WINDOW):"
for m in single sentinel cluster; do
	read -r mmin mmed <<<"$(stat "$W/$m.txt" miss)"
	read -r hmin hmed <<<"$(stat "$W/$m.txt" hit)"
	printf '%-9s miss %s %s   hit %s %s\n' "$m" "$mmin" "$mmed" "$hmin" "$hmed"
done
it_check "bench done"
it_finish

# shellcheck shell=bash
# lib_redisha.sh - Redis Sentinel and Cluster set-ups for the Redis HA integration tests
# (test_store_sentinel.sh, test_store_cluster.sh; SPEC §12), sourced after lib.sh and
# lib_auth.sh: real redis-server / redis-sentinel processes from Debian on free loopback
# ports, no persistence, each started through it_spawn (killed by PID by lib.sh's EXIT trap),
# every wait bounded.

# rha_wait_ping PORT SECONDS: the Redis (or sentinel) on 127.0.0.1:PORT answers PONG.
rha_wait_ping() {
	for _ in $(seq $(($2 * 10))); do
		[ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	return 1
}

# rha_ports N: N distinct free TCP ports of 127.0.0.1 (and their +10000 cluster bus ports free).
rha_ports() {
	python3 - "$1" <<'PY'
import socket, sys
n, got, held = int(sys.argv[1]), [], []
while len(got) < n:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    held.append(s)
    if p + 10000 > 65535 or p in got:
        continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        continue
    held.append(b)
    got.append(p)
print(" ".join(map(str, got)))
PY
}

# rha_redis NAME PORT [ARGS...]: a redis-server on 127.0.0.1:PORT, its folder $IT_WORK/NAME.
# Sets RHA_PID.
rha_redis() {
	local name=$1 port=$2 d=$IT_WORK/$1
	shift 2
	mkdir -p "$d"
	it_spawn "$name" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$d" "$@"
	RHA_PID=$IT_LAST_PID
	rha_wait_ping "$port" 10 || it_die "redis-server $name did not answer on port $port ($(tail -n 3 "$IT_WORK/$name.out"))"
}

# rha_sentinel NAME PORT MASTER_PORT QUORUM: a redis-sentinel monitoring "mymaster" at
# 127.0.0.1:MASTER_PORT with a 1 s down-after (the test's failover must be quick).
rha_sentinel() {
	local name=$1 port=$2 mport=$3 quorum=$4 d=$IT_WORK/$1
	mkdir -p "$d"
	cat >"$d/sentinel.conf" <<EOF
port $port
bind 127.0.0.1
dir $d
sentinel monitor mymaster 127.0.0.1 $mport $quorum
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
EOF
	it_spawn "$name" redis-sentinel "$d/sentinel.conf"
	RHA_PID=$IT_LAST_PID
	rha_wait_ping "$port" 10 || it_die "redis-sentinel $name did not answer on port $port"
}

# rha_sentinel_set MASTER_PORT REPLICA_PORT SENTINEL_PORT...: a master, its replica and the
# sentinels (quorum 2) on those ports. Sets RHA_MASTER_PID.
rha_sentinel_set() {
	local mport=$1 rport=$2 s
	shift 2
	rha_redis master "$mport"
	RHA_MASTER_PID=$RHA_PID
	rha_redis replica "$rport" --replicaof 127.0.0.1 "$mport"
	for s in "$@"; do rha_sentinel "sentinel-$s" "$s" "$mport" 2; done
}

# rha_cluster PORT...: one cluster-enabled redis-server per PORT (node timeout 2 s), joined by
# redis-cli --cluster create (masters only), waited for until every node says cluster_state:ok.
rha_cluster() {
	local p ok addrs=()
	for p in "$@"; do
		rha_redis "node-$p" "$p" --cluster-enabled yes --cluster-config-file "$IT_WORK/node-$p/nodes.conf" \
			--cluster-node-timeout 2000
		addrs+=("127.0.0.1:$p")
	done
	timeout 30 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
		>"$IT_WORK/create.out" 2>&1 || { tail -n 5 "$IT_WORK/create.out"; it_die "redis-cli --cluster create failed"; }
	for _ in $(seq 200); do
		ok=0
		for p in "$@"; do redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' && ok=$((ok + 1)); done
		[ "$ok" = $# ] && return 0
		sleep 0.1
	done
	it_die "cluster_state not ok on every node"
}

# rha_sentinel_master SENTINEL_PORT: "IP PORT" the sentinel reports for mymaster.
rha_sentinel_master() {
	redis-cli -p "$1" SENTINEL get-master-addr-by-name mymaster 2>/dev/null | tr '\n' ' ' | sed 's/ $//'
}

# rha_add_users CONFIG USER...: referee-admin user add USER@example.com --password pwUSER
# --permission LocalDialing for each; a failed add is a failed check. Appends USER:pwUSER to
# RHA_USERS (the SIPp injection list).
RHA_USERS=()
rha_add_users() {
	local cfgf=$1 u
	shift
	for u in "$@"; do
		"$ADMIN" -c "$cfgf" user add "$u@example.com" --password "pw$u" --permission LocalDialing \
			>>"$IT_WORK/admin.out" 2>&1 || it_fail "admin user add $u ($(grep -m1 'redis:' "$cfgf"))" "$(tail -n 1 "$IT_WORK/admin.out")"
		RHA_USERS+=("$u:pw$u")
	done
}

# rha_now_ms: wall clock in milliseconds (phase timing in the test logs).
rha_now_ms() { date +%s%3N; }
